"""Keras layers, loss and metrics of the sequence-to-sequence and language-model stages, in
``keras.ops`` and registered for ``safe_mode`` loading (so training and decoding run on every
Keras 3 backend)."""

from __future__ import annotations

import keras
from keras import ops

from ..layers import PACKAGE


# -- Keras layers, loss and metrics ----------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class PaddingMask(keras.layers.Layer):
    """``ids != 0`` as a boolean ``(batch, time)`` tensor (id 0 is padding).

    Example:
        >>> import numpy as np
        >>> PaddingMask()(np.array([[3, 0]])).tolist()
        [[True, False]]
    """

    def call(self, ids):
        return ops.not_equal(ids, 0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClearMask(keras.layers.Layer):
    """Identity that drops the Keras mask, so the loss sees unmasked logits and handles padding
    itself (the per-token mean over real tokens)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class SequenceAttention(keras.layers.Layer):
    """Attention of decoder states over encoder outputs, in ``keras.ops``.

    Args:
        score: ``bahdanau`` (additive: ``v^T tanh(W_q q + W_k s)``), ``dot`` (``q^T s``, needs
            equal sizes) or ``general`` (``q^T W s``).
        units: size of the additive score's hidden layer (``bahdanau`` only; default: the
            query size).

    Call args:
        query: ``(batch, target_steps, query_dim)``.
        values: ``(batch, source_steps, value_dim)``.
        values_mask: boolean ``(batch, source_steps)``; False marks padding, which gets no weight.

    Returns:
        ``(context, weights)``: ``(batch, target_steps, value_dim)`` and
        ``(batch, target_steps, source_steps)``, each row of weights summing to 1.

    Example:
        >>> import numpy as np
        >>> att = SequenceAttention("dot")
        >>> c, w = att(np.ones((1, 2, 4), "float32"), np.ones((1, 3, 4), "float32"),
        ...            np.array([[True, True, False]]))
        >>> w.shape, round(float(w[0, 0, 2]), 3)
        ((1, 2, 3), 0.0)
    """

    SCORES = ("bahdanau", "dot", "general")

    def __init__(self, score: str = "bahdanau", units: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if score not in self.SCORES:
            raise ValueError(f"SequenceAttention score must be one of {self.SCORES}. Received: score={score!r}")
        self.score = score
        self.units = units
        # The outputs carry no mask (the query's padding is the loss's business), but the
        # layer accepts masked inputs without a warning.
        self.supports_masking = True

    def build(self, query_shape, values_shape, values_mask_shape=None):
        q_dim, v_dim = int(query_shape[-1]), int(values_shape[-1])
        if self.score == "dot" and q_dim != v_dim:
            raise ValueError(
                f"dot attention needs decoder states and encoder outputs of one size; got {q_dim} and {v_dim}"
            )
        if self.score == "general":
            self.kernel = self.add_weight(name="kernel", shape=(q_dim, v_dim), initializer="glorot_uniform")
        elif self.score == "bahdanau":
            units = self.units or q_dim
            self.query_kernel = self.add_weight(name="query_kernel", shape=(q_dim, units), initializer="glorot_uniform")
            self.value_kernel = self.add_weight(name="value_kernel", shape=(v_dim, units), initializer="glorot_uniform")
            self.bias = self.add_weight(name="bias", shape=(units,), initializer="zeros")
            self.v = self.add_weight(name="v", shape=(units,), initializer="glorot_uniform")
        self.built = True

    def scores(self, query, values):
        """Unnormalised scores ``(batch, target_steps, source_steps)``."""
        if self.score == "dot":
            return ops.einsum("btd,bsd->bts", query, values)
        if self.score == "general":
            return ops.einsum("btd,bsd->bts", ops.matmul(query, self.kernel), values)
        q = ops.expand_dims(ops.matmul(query, self.query_kernel), 2)
        k = ops.expand_dims(ops.matmul(values, self.value_kernel), 1)
        return ops.sum(ops.tanh(q + k + self.bias) * self.v, axis=-1)

    def call(self, query, values, values_mask=None):
        scores = self.scores(query, values)
        if values_mask is not None:
            keep = ops.expand_dims(ops.cast(values_mask, "bool"), 1)
            scores = ops.where(keep, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, values)
        return context, weights

    # -- decoding one step at a time -------------------------------------------------------------
    # ``call`` scores all target steps at once (teacher forcing). A search calls the layer once per
    # generated token with the same encoder outputs, so the part of the score that depends on the
    # encoder outputs alone is computed once per sentence by ``keys`` and reused by ``attend``.
    def keys(self, values):
        """The encoder-side half of the score, computed once per sentence for ``attend``.

        Args:
            values: ``(batch, source_steps, value_dim)`` encoder outputs.

        Returns:
            ``(batch, source_steps, d)``: ``W_k s + b`` (``bahdanau``, ``d`` = units),
            ``s W^T`` (``general``, ``d`` = query size), or ``values`` itself (``dot``).
        """
        if self.score == "dot":
            return values
        if self.score == "general":
            return ops.matmul(values, ops.transpose(self.kernel))
        return ops.matmul(values, self.value_kernel) + self.bias

    def attend(self, query, keys, values, values_mask=None):
        """Attention of one decoder state per row, with ``keys`` from ``keys(values)``.

        Gives the same numbers as ``call`` on a single target step (up to float rounding: the
        products are grouped differently), at a fraction of the cost for ``bahdanau``.

        Args:
            query: ``(batch, query_dim)``, the top decoder layer's output at this step.
            keys: ``(batch, source_steps, d)`` from ``keys``.
            values: ``(batch, source_steps, value_dim)``.
            values_mask: boolean ``(batch, source_steps)`` or None.

        Returns:
            ``(context, weights)``: ``(batch, value_dim)`` and ``(batch, source_steps)``.
        """
        if self.score == "bahdanau":
            q = ops.expand_dims(ops.matmul(query, self.query_kernel), 1)
            scores = ops.tensordot(ops.tanh(q + keys), self.v, axes=1)
        else:
            scores = ops.squeeze(ops.matmul(keys, ops.expand_dims(query, -1)), -1)
        if values_mask is not None:
            scores = ops.where(ops.cast(values_mask, "bool"), scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)
        context = ops.squeeze(ops.matmul(ops.expand_dims(weights, 1), values), 1)
        return context, weights

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def compute_output_spec(self, query, values, values_mask=None):
        batch, steps = query.shape[0], query.shape[1]
        return (
            keras.KerasTensor((batch, steps, values.shape[-1]), dtype=self.compute_dtype),
            keras.KerasTensor((batch, steps, values.shape[1]), dtype=self.compute_dtype),
        )

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}


def _token_log_probs(y_true, logits):
    y_true = ops.cast(y_true, "int32")
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    picked = ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)
    return log_probs, picked, ops.cast(ops.not_equal(y_true, 0), "float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedSequenceLoss(keras.losses.Loss):
    """Token-level cross-entropy on logits, averaged over non-padding targets (id 0 is padding),
    with optional label smoothing (``label_smoothing`` of the target's mass spread uniformly over
    the vocabulary).

    Example:
        >>> import numpy as np
        >>> loss = MaskedSequenceLoss()
        >>> round(float(loss(np.array([[1, 0]]), np.zeros((1, 2, 4), "float32"))), 4)  # log(4)
        1.3863
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_sequence_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        log_probs, picked, mask = _token_log_probs(y_true, y_pred)
        loss = -picked
        if self.label_smoothing:
            smooth = -ops.mean(log_probs, axis=-1)
            loss = (1.0 - self.label_smoothing) * loss + self.label_smoothing * smooth
        return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens whose arg-max prediction is right."""

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self._direction = "up"  # lets checkpoint / early-stopping callbacks pick mode="max"
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        self.correct.assign_add(ops.sum(hit * mask))
        self.count.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Perplexity(keras.metrics.Metric):
    """``exp`` of the mean negative log-likelihood per non-padding target token (no smoothing),
    accumulated over the whole evaluation set."""

    def __init__(self, name: str = "perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self._direction = "down"
        self.nll = self.add_variable(shape=(), initializer="zeros", name="nll")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        _, picked, mask = _token_log_probs(y_true, y_pred)
        self.nll.assign_add(-ops.sum(picked * mask))
        self.count.assign_add(ops.sum(mask))

    def result(self):
        return ops.exp(self.nll / ops.maximum(self.count, 1.0))

    def reset_state(self):
        self.nll.assign(0.0)
        self.count.assign(0.0)


# -- shared plumbing of the two generative models ---------------------------------------------------
def _renamed(layer, name):
    """A fresh copy of a vectorizer's input layer under a unique name (a model needs unique names)."""
    config = layer.get_config()
    config["name"] = name
    return type(layer).from_config(config)


def _as_state_list(states):
    if isinstance(states, (list, tuple)):
        return list(states)
    return [states]
