"""Custom Keras layers, written in ``keras.ops`` so they run on every Keras 3 backend.

They are registered under the package name ``keras_text_pipeline`` so that ``model.keras``
files load with ``safe_mode=True`` once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "keras_text_pipeline"


@keras.saving.register_keras_serializable(package=PACKAGE)
class OneHot(keras.layers.Layer):
    """Turns integer ids of shape ``(batch, time)`` into one-hot vectors ``(batch, time, depth)``.

    The one-hot matrix is computed inside the graph, so the data fed to the model stays as ids
    (memory proportional to the number of tokens, not tokens x vocabulary). Id 0 is padding
    and is masked when ``mask_zero`` is set.

    Example:
        >>> import numpy as np
        >>> OneHot(depth=4)(np.array([[2, 0]])).shape
        (1, 2, 4)
    """

    def __init__(self, depth: int, mask_zero: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = True

    def call(self, inputs):
        ids = ops.cast(inputs, "int32")
        vectors = ops.one_hot(ids, self.depth, dtype=self.compute_dtype)
        # Padding (id 0) is an all-zero row, as in the numpy matrix of OneHotVectorizer.to_matrix.
        keep = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), self.compute_dtype), -1)
        return vectors * keep

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "mask_zero": self.mask_zero}


class _TimePooling(keras.layers.Layer):
    """Base of the poolings: ``(batch, time, dim)`` with a padding mask in, ``(batch, dim)`` out,
    and no mask past it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedPooling(_TimePooling):
    """Max or mean over the time axis that ignores masked (padding) steps.

    Example:
        >>> import numpy as np
        >>> x = np.array([[[1.0], [3.0], [100.0]]])
        >>> m = np.array([[True, True, False]])
        >>> float(MaskedPooling("mean")(x, mask=m)[0, 0])
        2.0
    """

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"MaskedPooling mode must be 'max' or 'mean'. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs, mask=None):
        if mask is None:
            if self.mode == "max":
                return ops.max(inputs, axis=1)
            return ops.mean(inputs, axis=1)
        m = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        if self.mode == "max":
            # Padding steps get a very negative value so they never win; an all-padding row
            # (empty text) falls back to zeros rather than -inf.
            neg = ops.cast(-1e9, inputs.dtype)
            pooled = ops.max(ops.where(m > 0, inputs, neg), axis=1)
            any_step = ops.max(m, axis=1) > 0
            return ops.where(any_step, pooled, ops.zeros_like(pooled))
        total = ops.sum(inputs * m, axis=1)
        count = ops.maximum(ops.sum(m, axis=1), 1.0)
        return total / count

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionPooling(_TimePooling):
    """Weighted mean over the time axis with learned weights (additive self-attention).

    Each step ``h_t`` gets a score ``v^T tanh(W h_t + b)``; a softmax over the non-padding steps
    turns the scores into weights, and the output is ``sum_t weight_t * h_t``. A row that is
    all padding (an empty text) pools to zeros.

    Example:
        >>> import numpy as np
        >>> layer = AttentionPooling(units=4)
        >>> x = np.ones((2, 3, 5), dtype="float32")
        >>> layer(x, mask=np.array([[True, True, False], [False, False, False]])).shape
        (2, 5)
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(dim, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.query = self.add_weight(name="query", shape=(self.units, 1), initializer="glorot_uniform")

    def weights_of(self, inputs, mask=None):
        """The attention weights, shape ``(batch, time)`` (zero on padding steps)."""
        scores = ops.squeeze(ops.matmul(ops.tanh(ops.matmul(inputs, self.kernel) + self.bias), self.query), -1)
        scores = ops.cast(scores, "float32")
        if mask is None:
            return ops.softmax(scores, axis=-1)
        keep = ops.cast(mask, "float32")
        scores = ops.where(keep > 0, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1) * keep
        # renormalised, so an all-padding row gets all-zero weights instead of uniform ones
        return weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)

    def call(self, inputs, mask=None):
        weights = ops.cast(self.weights_of(inputs, mask), inputs.dtype)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


#: How ``NgramBag`` scales its sum over a text.
NGRAM_NORMS = ("sum", "mean", "sqrt")


def hash_pair(left, right, salt: int, buckets: int):
    """Hash two int32 id tensors (element-wise) into ``1 .. buckets - 1`` (0 stays padding).

    Every intermediate stays below 2**31, so it is exact in int32 on every backend (JAX runs
    without 64-bit integers by default) and in an exported TensorFlow graph.
    """
    prime = 65521
    mixed = (left % prime) * 7919 + (right % prime) * 31 + salt
    return mixed % (buckets - 1) + 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class NgramBag(keras.layers.Layer):
    """A linear bag-of-n-grams model over token ids: the sum, over a text, of a trained score
    vector per token and per hashed n-gram of 2..``max_n`` consecutive tokens, times ``scale``.

    Ids are ``(batch, time)`` with 0 as padding; an n-gram counts only when all its tokens are
    real. The output ``(batch, units)`` is meant to be added to a network's logits (the "wide"
    part of a wide-and-deep model, as in fastText). ``norm`` ``sum`` keeps the sum; ``mean``
    divides it by the text's token count, ``sqrt`` by its square root (closer to the L2-normalised
    rows of a TF-IDF model), so long and short texts give scores of the same size. The score vectors start at zero, so the bag
    adds nothing until it has learned; ``scale`` multiplies its output, which with Adam makes
    it learn about ``scale`` times faster.

    Example:
        >>> import numpy as np
        >>> bag = NgramBag(vocab_size=5, units=2, max_n=2)
        >>> bag(np.array([[1, 2, 0]])).shape
        (1, 2)
    """

    def __init__(self, vocab_size: int, units: int, max_n: int = 2, buckets: int = 1 << 18, scale: float = 1.0,
                 norm: str = "sum", **kwargs):
        super().__init__(**kwargs)
        if int(max_n) < 1 or int(buckets) < 2 or int(vocab_size) < 1 or int(units) < 1:
            raise ValueError(f"NgramBag needs vocab_size, units, max_n >= 1 and buckets >= 2; got {vocab_size}, {units}, {max_n}, {buckets}")
        if norm not in NGRAM_NORMS:
            raise ValueError(f"NgramBag norm must be one of {', '.join(NGRAM_NORMS)}. Received: norm={norm!r}")
        self.vocab_size, self.units, self.max_n = int(vocab_size), int(units), int(max_n)
        self.buckets, self.scale, self.norm = int(buckets), float(scale), norm

    def build(self, input_shape):
        self.unigram_scores = self.add_weight(shape=(self.vocab_size, self.units), initializer="zeros", name="unigram_scores")
        self.ngram_scores = None
        if self.max_n > 1:
            self.ngram_scores = self.add_weight(shape=(self.buckets, self.units), initializer="zeros", name="ngram_scores")

    @staticmethod
    def _bag(table, ids, valid):
        return ops.sum(ops.take(table, ids, axis=0) * ops.expand_dims(valid, -1), axis=1)

    def call(self, inputs):
        ids = ops.cast(inputs, "int32")
        real = ops.cast(ops.not_equal(ids, 0), self.compute_dtype)
        total = self._bag(self.unigram_scores, ids, real)
        hashed, valid = ids, real
        for n in range(2, self.max_n + 1):
            # n-grams ending at each position from n-1 on: the (n-1)-gram's hash and the token
            hashed = hash_pair(hashed[:, :-1], ids[:, n - 1 :], n, self.buckets)
            valid = valid[:, :-1] * real[:, n - 1 :]
            total = total + self._bag(self.ngram_scores, hashed, valid)
        if self.norm != "sum":
            count = ops.maximum(ops.sum(real, axis=1, keepdims=True), 1.0)  # an empty text scores 0
            total = total / (count if self.norm == "mean" else ops.sqrt(count))
        return total * ops.cast(self.scale, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "units": self.units,
            "max_n": self.max_n,
            "buckets": self.buckets,
            "scale": self.scale,
            "norm": self.norm,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenDropout(keras.layers.Layer):
    """Word dropout: while training, each token id (not padding, not ``<unk>``) becomes the
    ``<unk>`` id with probability ``rate``; at prediction time ids pass unchanged.

    The network then learns to answer from the rest of the text when a word is missing, as
    it must for the words unseen in training (Iyyer et al. 2015 drop words; Lample et al. 2016
    replace singletons by ``<unk>``). The padding mask is unchanged.

    Example:
        >>> import numpy as np
        >>> ids = np.array([[5, 6, 7, 0]])
        >>> np.asarray(TokenDropout(0.5)(ids)).tolist()  # not training: unchanged
        [[5, 6, 7, 0]]
        >>> np.asarray(TokenDropout(1.0)(ids, training=True)).tolist()
        [[1, 1, 1, 0]]
    """

    def __init__(self, rate: float, unk_id: int = 1, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"TokenDropout rate must be in [0, 1]; got {rate}")
        self.rate, self.unk_id, self.seed = float(rate), int(unk_id), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=None):
        if not training or self.rate == 0.0:
            return ids
        drop = ops.less(keras.random.uniform(ops.shape(ids), seed=self.seed_generator), self.rate)
        drop = ops.logical_and(drop, ops.greater(ids, self.unk_id))  # keep <pad> (and <unk>)
        return ops.where(drop, ops.cast(self.unk_id, ids.dtype), ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "unk_id": self.unk_id, "seed": self.seed}
