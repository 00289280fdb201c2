"""A linear-chain conditional random field (CRF) written in ``keras.ops`` only.

Two Keras objects live here, both registered under the package name ``keras_text_pipeline`` so
that a saved ``model.keras`` loads with ``safe_mode=True`` once this module is imported:

- ``CRF``: a layer holding the transition scores (tag -> tag, plus start -> tag and tag -> end).
  In the network it passes its input (the per-token tag scores, "emissions") through unchanged;
  its methods do the CRF arithmetic: the log-likelihood by the forward algorithm, Viterbi
  decoding and marginals by forward-backward. Every method takes a ``(batch, time)`` mask whose
  true steps form a prefix of each row (post padding) and ignores the rest.
- ``CRFTaggerModel``: a functional ``keras.Model`` whose loss is the CRF's negative
  log-likelihood, computed in ``compute_loss`` so it runs on every backend (TensorFlow, JAX).

Transitions that a tag scheme forbids (``O`` -> ``I-PER`` in BIO, say) can be switched off with
the ``allowed_*`` arguments: a forbidden score gets ``-penalty`` added, so neither training nor
decoding ever takes it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PACKAGE = "keras_text_pipeline"


def _as_01(name, value, shape):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.shape != shape or not np.isin(arr, (0, 1)).all():
        raise ValueError(f"CRF {name} must be a 0/1 array of shape {shape}. Received shape {arr.shape}")
    return arr.astype("int32").tolist()


@keras.saving.register_keras_serializable(package=PACKAGE)
class CRF(keras.layers.Layer):
    """Linear-chain CRF over ``num_tags`` tags.

    Args:
        num_tags: number of tags K; the input's last axis must have this size.
        allowed_transitions: optional K x K 0/1 matrix; ``[i][j] == 0`` forbids tag ``i``
            followed by tag ``j``.
        allowed_start: optional K 0/1 vector; 0 forbids a sentence starting with that tag.
        allowed_end: optional K 0/1 vector; 0 forbids a sentence ending with that tag.
        penalty: what a forbidden transition costs (large, but finite so no NaN can appear).

    Example:
        >>> import numpy as np
        >>> crf = CRF(num_tags=3)
        >>> scores = np.zeros((1, 4, 3), "float32")
        >>> _ = crf(scores)  # builds the weights; the output is the input
        >>> tags, best = crf.viterbi(scores, np.array([[1, 1, 1, 0]], bool))
        >>> np.asarray(tags).shape
        (1, 4)
    """

    def __init__(
        self,
        num_tags: int,
        allowed_transitions=None,
        allowed_start=None,
        allowed_end=None,
        penalty: float = 1e4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"CRF num_tags must be an integer >= 1. Received: num_tags={num_tags!r}")
        self.num_tags = num_tags
        self.allowed_transitions = _as_01("allowed_transitions", allowed_transitions, (num_tags, num_tags))
        self.allowed_start = _as_01("allowed_start", allowed_start, (num_tags,))
        self.allowed_end = _as_01("allowed_end", allowed_end, (num_tags,))
        self.penalty = float(penalty)
        self.supports_masking = True
        if keras.backend.backend() == "tensorflow":
            # XLA cannot compile the gradient of the TensorFlow scan (a TensorArray while
            # loop); this keeps Keras' jit_compile="auto" from turning XLA on (e.g. on GPU).
            self.supports_jit = False

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.num_tags:
            raise ValueError(
                f"CRF expects inputs with {self.num_tags} scores per step (num_tags); got shape {input_shape}"
            )
        k = self.num_tags
        self.transitions = self.add_weight(
            shape=(k, k), initializer=keras.initializers.RandomUniform(-0.1, 0.1), name="transitions"
        )
        self.start_transitions = self.add_weight(shape=(k,), initializer="zeros", name="start_transitions")
        self.end_transitions = self.add_weight(shape=(k,), initializer="zeros", name="end_transitions")

    def call(self, inputs, mask=None):
        # The CRF adds nothing to the per-token scores; what it learns is used by the loss
        # and by decoding. Scores are kept in float32 for the log-space sums.
        return ops.cast(inputs, "float32")

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_tags": self.num_tags,
            "allowed_transitions": self.allowed_transitions,
            "allowed_start": self.allowed_start,
            "allowed_end": self.allowed_end,
            "penalty": self.penalty,
        }

    # -- parameters with constraints applied ------------------------------------------------
    def _penalised(self, weight, allowed):
        if allowed is None:
            return ops.cast(weight, "float32")
        forbidden = 1.0 - np.asarray(allowed, dtype="float32")
        return ops.cast(weight, "float32") - self.penalty * ops.convert_to_tensor(forbidden)

    def effective_transitions(self):
        """``(transitions, start, end)`` with the forbidden moves penalised."""
        return (
            self._penalised(self.transitions, self.allowed_transitions),
            self._penalised(self.start_transitions, self.allowed_start),
            self._penalised(self.end_transitions, self.allowed_end),
        )

    @staticmethod
    def _prepare(potentials, mask):
        potentials = ops.cast(potentials, "float32")
        if mask is None:
            mask = ops.ones(ops.shape(potentials)[:2], dtype="bool")
        mask = ops.cast(mask, "bool")
        # Time-major for scanning over steps.
        return ops.transpose(potentials, (1, 0, 2)), ops.transpose(mask, (1, 0))

    # -- training ---------------------------------------------------------------------------
    def log_partition(self, potentials, mask=None):
        """log Z for each sentence, by the forward algorithm: shape ``(batch,)``."""
        trans, start, end = self.effective_transitions()
        emissions, steps = self._prepare(potentials, mask)
        alpha_last, _ = self._forward(emissions, steps, trans, start)
        return ops.logsumexp(alpha_last + end[None, :], axis=1)

    @staticmethod
    def _forward(emissions, steps, trans, start):
        def step(alpha, packed):
            emission, valid = _unpack(packed)
            nxt = ops.logsumexp(alpha[:, :, None] + trans[None, :, :], axis=1) + emission
            alpha = ops.where(valid[:, None], nxt, alpha)
            return alpha, alpha

        alpha0 = start[None, :] + emissions[0]
        alpha_last, alphas = ops.scan(step, alpha0, _pack(emissions[1:], steps[1:]))
        return alpha_last, ops.concatenate([alpha0[None], alphas], axis=0)

    def path_score(self, potentials, tags, mask=None):
        """The unnormalised score of the tag sequences ``tags``: shape ``(batch,)``."""
        trans, start, end = self.effective_transitions()
        potentials = ops.cast(potentials, "float32")
        tags = ops.cast(tags, "int32")
        if mask is None:
            mask = ops.ones(ops.shape(tags), dtype="bool")
        valid = ops.cast(mask, "float32")
        k = self.num_tags
        emitted = ops.take_along_axis(potentials, tags[:, :, None], axis=2)[:, :, 0]
        score = ops.sum(emitted * valid, axis=1)
        pairs = tags[:, :-1] * k + tags[:, 1:]
        score += ops.sum(ops.take(ops.reshape(trans, (-1,)), pairs) * valid[:, 1:], axis=1)
        lengths = ops.cast(ops.sum(valid, axis=1), "int32")
        has_any = ops.cast(lengths > 0, "float32")
        score += ops.take(start, tags[:, 0]) * has_any
        last = ops.take_along_axis(tags, ops.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0]
        score += ops.take(end, last) * has_any
        return score

    def log_likelihood(self, potentials, tags, mask=None):
        """log p(tags | sentence) for each sentence: shape ``(batch,)`` (0 for empty rows)."""
        if mask is None:
            mask = ops.ones(ops.shape(tags), dtype="bool")
        ll = self.path_score(potentials, tags, mask) - self.log_partition(potentials, mask)
        has_any = ops.any(ops.cast(mask, "bool"), axis=1)
        return ops.where(has_any, ll, ops.zeros_like(ll))

    # -- inference --------------------------------------------------------------------------
    def viterbi(self, potentials, mask=None):
        """The best tag sequence of each sentence.

        Returns:
            ``(tags, scores)``: int32 tags ``(batch, time)`` with 0 on padding steps, and the
            best path's unnormalised score ``(batch,)``.
        """
        trans, start, end = self.effective_transitions()
        emissions, steps = self._prepare(potentials, mask)
        k = self.num_tags
        batch = ops.shape(emissions)[1]
        identity = ops.broadcast_to(ops.arange(k, dtype="int32")[None, :], (batch, k))

        def step(carry, packed):
            score, _ = carry
            emission, valid = _unpack(packed)
            candidates = score[:, :, None] + trans[None, :, :]
            best_prev = ops.cast(ops.argmax(candidates, axis=1), "int32")
            nxt = ops.max(candidates, axis=1) + emission
            score = ops.where(valid[:, None], nxt, score)
            # A padding step points each tag back to itself, so backtracking walks
            # through the padding unchanged to the last real step.
            pointers = ops.where(valid[:, None], best_prev, identity)
            return (score, pointers), (score, pointers)

        score0 = start[None, :] + emissions[0]
        (last_score, _), (_, pointers) = ops.scan(step, (score0, identity), _pack(emissions[1:], steps[1:]))
        final = last_score + end[None, :]
        last_tag = ops.cast(ops.argmax(final, axis=1), "int32")
        best = ops.max(final, axis=1)

        def back(tag, pointer):
            prev = ops.take_along_axis(pointer, tag[:, None], axis=1)[:, 0]
            return prev, prev

        _, earlier = ops.scan(back, last_tag, pointers, reverse=True)
        tags = ops.concatenate([earlier, last_tag[None]], axis=0)
        tags = ops.transpose(tags, (1, 0)) * ops.cast(ops.transpose(steps, (1, 0)), "int32")
        return tags, best

    def forward_backward(self, potentials, mask=None):
        """Forward and backward log scores.

        Returns:
            ``(log_alpha, log_beta, log_z)``: ``log_alpha[b, t, k]`` sums the scores of every
            path prefix ending in tag ``k`` at step ``t`` (its emission included),
            ``log_beta[b, t, k]`` every path suffix after step ``t`` given tag ``k`` there (end
            transition included), and ``log_z`` is ``(batch,)``. Values on padding steps are
            meaningless.
        """
        trans, start, end = self.effective_transitions()
        emissions, steps = self._prepare(potentials, mask)
        alpha_last, alphas = self._forward(emissions, steps, trans, start)
        log_z = ops.logsumexp(alpha_last + end[None, :], axis=1)
        beta_last = ops.broadcast_to(end[None, :], ops.shape(emissions[0]))

        def step(beta, packed):
            emission, valid = _unpack(packed)  # of the step after the one computed here
            nxt = ops.logsumexp(trans[None, :, :] + (emission + beta)[:, None, :], axis=2)
            beta = ops.where(valid[:, None], nxt, beta)
            return beta, beta

        _, betas = ops.scan(step, beta_last, _pack(emissions[1:], steps[1:]), reverse=True)
        betas = ops.concatenate([betas, beta_last[None]], axis=0)
        return ops.transpose(alphas, (1, 0, 2)), ops.transpose(betas, (1, 0, 2)), log_z

    def marginals(self, potentials, mask=None):
        """p(tag at step t = k | sentence): ``(batch, time, K)``, zero on padding steps."""
        log_alpha, log_beta, log_z = self.forward_backward(potentials, mask)
        probs = ops.exp(log_alpha + log_beta - log_z[:, None, None])
        if mask is not None:
            probs = probs * ops.cast(mask, "float32")[:, :, None]
        return probs


class CRFDecoding(keras.layers.Layer):
    """Decodes a CRF's per-token scores inside a model: Viterbi tags plus forward-backward scores.

    Built at run time on top of a trained tagger (it shares the ``crf`` layer's weights and is
    never saved), so decoding runs compiled like any model call instead of op by op.

    Called on ``[scores, token_ids]``: the token ids give the mask (0 is padding), so decoding
    does not depend on Keras mask propagation.

    Args:
        crf: the trained ``CRF`` layer.

    Returns (from ``call``):
        ``[tags, scores, log_alpha, log_beta, log_z]``: int32 tags ``(batch, time)`` (0 on
        padding), the per-token scores passed through, and the outputs of
        ``CRF.forward_backward``.
    """

    def __init__(self, crf: CRF, **kwargs):
        super().__init__(**kwargs)
        self.crf = crf
        if keras.backend.backend() == "tensorflow":
            self.supports_jit = False

    def call(self, inputs):
        potentials, token_ids = inputs
        mask = ops.not_equal(token_ids, 0)
        tags, _ = self.crf.viterbi(potentials, mask)
        log_alpha, log_beta, log_z = self.crf.forward_backward(potentials, mask)
        return [tags, ops.cast(potentials, "float32"), log_alpha, log_beta, log_z]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs):
        shape = inputs[0].shape
        return [
            keras.KerasTensor(shape[:2], dtype="int32"),
            keras.KerasTensor(shape, dtype="float32"),
            keras.KerasTensor(shape, dtype="float32"),
            keras.KerasTensor(shape, dtype="float32"),
            keras.KerasTensor(shape[:1], dtype="float32"),
        ]


def _pack(emissions, steps):
    # One tensor to scan over: the TensorFlow scan of Keras cannot take several inputs when
    # the number of steps is unknown while tracing.
    return ops.concatenate([emissions, ops.cast(steps, emissions.dtype)[:, :, None]], axis=-1)


def _unpack(packed):
    return packed[:, :-1], packed[:, -1] > 0.5


def _token_ids(x):
    if isinstance(x, dict):
        return x["token_ids"]
    if isinstance(x, (list, tuple)):
        return x[0]
    return x


@keras.saving.register_keras_serializable(package=PACKAGE)
class CRFTaggerModel(keras.Model):
    """A functional model ending in a ``CRF`` layer, trained on the CRF's negative log-likelihood.

    Build it like any functional model; the first input (or the one named ``token_ids``) holds
    token ids with 0 as padding, which gives the mask. The output is the per-token tag scores;
    decode them with the CRF layer (``model.crf.viterbi``). The loss is the mean over sentences
    of ``-log p(gold tags | sentence)``, plus any regularisation losses. Compiled metrics (e.g.
    accuracy) see the per-token scores, i.e. they measure the emissions' argmax, not Viterbi.

    Example:
        >>> ids = keras.Input((None,), dtype="int32", name="token_ids")
        >>> x = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
        >>> out = CRF(3, name="crf")(keras.layers.Dense(3)(x))
        >>> model = CRFTaggerModel(ids, out)
        >>> model.compile(optimizer="adam")
    """

    @property
    def crf(self) -> CRF:
        for layer in self.layers:
            if isinstance(layer, CRF):
                return layer
        raise ValueError(f"Model {self.name} has no CRF layer")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mask = ops.not_equal(_token_ids(x), 0)
        nll = -self.crf.log_likelihood(y_pred, y, mask)
        loss = ops.mean(nll)
        for extra in self.losses:
            loss = loss + ops.cast(extra, loss.dtype)
        return loss
