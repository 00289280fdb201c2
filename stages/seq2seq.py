"""Sequence-to-sequence and language-model stages.

- ``rnn_seq2seq``: a recurrent encoder-decoder (SimpleRNN / LSTM / GRU), optionally
  bidirectional and stacked on the encoder side, with ``none``, ``bahdanau`` (additive) or
  ``luong`` (multiplicative, ``dot`` or ``general``) attention, trained with teacher forcing.
- ``rnn_language_model``: a stacked recurrent next-token model.
- ``text`` decoder: greedy or beam-search settings and detokenisation for translations.
- ``sampler`` decoder: temperature / top-k sampling settings for generated text.

The attention layer, the loss and the metrics are written in ``keras.ops`` and registered for
``safe_mode`` loading, so training and decoding run on every Keras 3 backend.

Attention is computed on the top decoder layer's output ``h_t`` (the Luong et al. 2015
architecture): a context vector ``c_t`` over the encoder outputs, then the attentional state
``tanh(W_c [c_t; h_t])`` feeds the output layer. ``bahdanau`` scores with the additive form
``v^T tanh(W_q h_t + W_k s)`` of Bahdanau et al. (2015); ``luong`` with ``h_t^T s`` (``dot``) or
``h_t^T W s`` (``general``). The context is not fed back into the next step's input (no
input feeding), which keeps teacher-forced training a single pass of the built-in RNN layers.
"""

from __future__ import annotations

import logging
import os
import re

import keras
import numpy as np
from keras import ops

from .errors import ConfigError
from .registry import register

from .base import Stage, check_bool, check_choice, check_float, check_int
from .layers import PACKAGE
from .models import CELLS, RecurrentModel

log = logging.getLogger("ktp")

BOS = "<bos>"
EOS = "<eos>"

#: Languages written without spaces between words (detokenised by joining tokens).
UNSPACED_LANGUAGES = ("zh", "ja", "th", "lo", "km", "my", "bo", "cmn", "yue", "wuu")


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


class _GenerativeModel(RecurrentModel):
    """Shared parts of the sequence-generating models: compile, decoder step, save / load."""

    fitted_attributes = ("model_",)

    def _validate_common(self):
        super()._validate_common()
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0)
        if self.label_smoothing >= 1:
            raise ConfigError("label_smoothing", "must be < 1", self.label_smoothing)

    def _state_count(self) -> int:
        return 2 if self.cell == "lstm" else 1

    def _decoder_cell(self, units: int, name: str):
        return CELLS[self.cell](
            units,
            return_sequences=True,
            return_state=True,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            recurrent_initializer=self.recurrent_initializer,
            kernel_initializer=self.kernel_initializer,
            name=name,
        )

    def _compile(self, model):
        model.compile(
            optimizer=self._optimizer(),
            loss=MaskedSequenceLoss(label_smoothing=self.label_smoothing),
            metrics=[MaskedAccuracy(), Perplexity()],
        )

    def fit(self, data, validation_data=None, epochs=10, batch_size=None, callbacks=(), verbose="auto", initial_epoch=0):
        """Train on a dataset of ``(inputs, targets)`` batches (a ``keras.utils.PyDataset``)."""
        self.check_fitted()
        history = self.model_.fit(
            data,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=self._fit_callbacks(callbacks),
            verbose=verbose,
            initial_epoch=initial_epoch,
            shuffle=False,  # the dataset shuffles its own length buckets
        )
        self.history_ = history.history
        return self

    def evaluate(self, data) -> dict:
        """Loss, token accuracy and perplexity over a dataset of batches."""
        self.check_fitted()
        return {k: float(v) for k, v in self.model_.evaluate(data, verbose=0, return_dict=True).items()}

    def _decoder_step(self, tokens, state, embed, rnns, attention=None, combine=None, context=None):
        """One decoder step for a batch of rows (inference: no dropout).

        Returns ``(log_probs, new_state, attention_weights or None)``.
        """
        x = embed(tokens)
        n = self._state_count()
        new_state = []
        for j, layer in enumerate(rnns):
            # The cell's own ``call`` (not ``__call__``): one step needs no mask handling.
            out, states = layer.cell.call(x, state[j * n:(j + 1) * n], training=False)
            new_state.extend(_as_state_list(states))
            x = out
        weights = None
        if attention is not None:
            # ``context`` is ``[values, mask]`` or ``[values, mask, keys]``; without precomputed
            # keys (a caller of the older two-tensor form) they are computed here, every step.
            values, values_mask = context[0], context[1]
            keys = context[2] if len(context) > 2 else attention.keys(values)
            ctx, weights = attention.attend(x, keys, values, values_mask)
            x = combine(ops.concatenate([ctx, x], axis=-1))
        logits = self._logits(x)
        return ops.log_softmax(ops.cast(logits, "float32"), axis=-1), new_state, weights

    def save_assets(self, directory):
        self.check_fitted()
        self.model_.save(os.path.join(directory, "model.keras"))

    def load_assets(self, directory):
        super().load_assets(directory)
        self._collect_layers()


# -- rnn_seq2seq --------------------------------------------------------------------------------------
@register("model", "rnn_seq2seq")
class RNNSeq2Seq(_GenerativeModel):
    """Recurrent encoder-decoder for translation, trained with teacher forcing.

    source ids -> source vectors -> [bi]RNN x ``layers`` -> encoder outputs and final states;
    ``<bos>`` + target ids -> target vectors -> RNN x ``decoder_layers`` (started from the
    encoder's final states) -> [attention] -> dropout -> logits over the target vocabulary.

    The decoder's width is ``units`` (twice that with a bidirectional encoder, whose forward and
    backward states are concatenated), so the encoder's states start the decoder directly.

    Args:
        cell: ``simple_rnn``, ``lstm`` or ``gru``.
        units: units per encoder layer and direction.
        layers: stacked encoder layers.
        decoder_layers: stacked decoder layers. With as many as encoder layers, decoder layer i
            starts from encoder layer i's final state; otherwise every decoder layer starts
            from the top encoder layer's.
        bidirectional: read the source both ways.
        attention: ``none``, ``bahdanau`` (additive score) or ``luong`` (multiplicative score).
        luong_score: ``general`` (``h^T W s``) or ``dot`` (``h^T s``), for ``attention: luong``.
        dropout: dropout on recurrent-layer inputs and before the output layer.
        recurrent_dropout: dropout on recurrent states.
        input_dropout: spatial dropout on the token vectors.
        label_smoothing: share of each target's probability mass spread over the vocabulary in
            the training loss (0 to < 1).
        recurrent_initializer, kernel_initializer: initializers of the recurrent and input kernels.
        optimizer, learning_rate: the optimizer.
        clipnorm, clipvalue: gradient clipping by norm / by value (null: off).
        ema_momentum: null (off) or the momentum (e.g. 0.999) of a moving average of the weights,
            as for ``rnn_classifier``: dev loss, dev BLEU, best-epoch restoring and checkpoints
            use the averaged weights, and they are the ones saved.

    Example:
        >>> RNNSeq2Seq(cell="gru", units=8, attention="luong", luong_score="dot").get_config()["attention"]
        'luong'
    """

    ATTENTION = ("none", "bahdanau", "luong")

    def __init__(
        self,
        cell: str = "gru",
        units: int = 128,
        layers: int = 1,
        decoder_layers: int = 1,
        bidirectional: bool = True,
        attention: str = "bahdanau",
        luong_score: str = "general",
        dropout: float = 0.2,
        recurrent_dropout: float = 0.0,
        input_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        recurrent_initializer: str = "orthogonal",
        kernel_initializer: str = "glorot_uniform",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        clipnorm: float | None = 1.0,
        clipvalue: float | None = None,
        ema_momentum: float | None = None,
    ):
        super().__init__()
        self.model_ = None
        self.encoder_model_ = None

    def _validate(self):
        self._validate_common()
        check_int("decoder_layers", self.decoder_layers, minimum=1)
        check_choice("attention", self.attention, self.ATTENTION)
        check_choice("luong_score", self.luong_score, ("general", "dot"))

    @property
    def decoder_units(self) -> int:
        return self.units * (2 if self.bidirectional else 1)

    # -- graph ---------------------------------------------------------------------------------
    def build(self, source_layer, target_layer, target_vocab_size: int, initial_weights=(None, None)):
        """Build and compile the teacher-forced training model.

        Args:
            source_layer: the source vectorizer's input layer (ids -> vectors).
            target_layer: the target vectorizer's input layer.
            target_vocab_size: size of the target vocabulary (the output layer's width).
            initial_weights: pretrained matrices for the two input layers, or None each.
        """
        source_layer = _renamed(source_layer, "source_embedding")
        target_layer = _renamed(target_layer, "target_embedding")
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        target_ids = keras.Input(shape=(None,), dtype="int32", name="target_in_ids")
        x = source_layer(source_ids)
        if self.input_dropout:
            x = keras.layers.SpatialDropout1D(self.input_dropout, name="source_dropout")(x)
        enc_states = []
        for i in range(self.layers):
            layer = CELLS[self.cell](
                self.units,
                return_sequences=True,
                return_state=True,
                dropout=self.dropout,
                recurrent_dropout=self.recurrent_dropout,
                recurrent_initializer=self.recurrent_initializer,
                kernel_initializer=self.kernel_initializer,
                name=f"encoder_{i + 1}",
            )
            if self.bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bi_encoder_{i + 1}")
            outs = layer(x)
            x, states = outs[0], list(outs[1:])
            if self.bidirectional:
                n = len(states) // 2
                states = [
                    keras.layers.Concatenate(name=f"encoder_{i + 1}_state_{k + 1}")([states[k], states[n + k]])
                    for k in range(n)
                ]
            enc_states.append(states)
        source_mask = PaddingMask(name="source_mask")(source_ids)

        y = target_layer(target_ids)
        if self.input_dropout:
            y = keras.layers.SpatialDropout1D(self.input_dropout, name="target_dropout")(y)
        for j in range(self.decoder_layers):
            init = enc_states[j] if self.decoder_layers == self.layers else enc_states[-1]
            outs = self._decoder_cell(self.decoder_units, f"decoder_{j + 1}")(y, initial_state=init)
            y = outs[0]
        if self.attention != "none":
            score = "bahdanau" if self.attention == "bahdanau" else self.luong_score
            context, _ = SequenceAttention(score, name="attention")(y, x, source_mask)
            y = keras.layers.Concatenate(name="attention_concat")([context, y])
            y = keras.layers.Dense(self.decoder_units, activation="tanh", name="attention_combine")(y)
        y = ClearMask(name="clear_mask")(y)
        if self.dropout:
            y = keras.layers.Dropout(self.dropout, name="output_dropout")(y)
        logits = keras.layers.Dense(target_vocab_size, name="logits")(y)
        model = keras.Model([source_ids, target_ids], logits, name="rnn_seq2seq")
        for layer, weights in zip((source_layer, target_layer), initial_weights or (None, None)):
            if weights is not None:
                layer.set_weights([weights])
        self._compile(model)
        self.model_ = model
        self._collect_layers()
        return self

    def _collect_layers(self):
        """Find the layers decoding needs in ``model_`` (after build or load) and build the
        encoder sub-model from them."""
        m = self.model_
        self._target_embedding = m.get_layer("target_embedding")
        self._decoder_rnns = [m.get_layer(f"decoder_{j + 1}") for j in range(self.decoder_layers)]
        self._attention = m.get_layer("attention") if self.attention != "none" else None
        self._combine = m.get_layer("attention_combine") if self.attention != "none" else None
        self._logits = m.get_layer("logits")
        # The encoder sub-model reuses the trained layers; its outputs are the encoder outputs,
        # the source mask and the decoder's initial states.
        source_ids = m.inputs[0]
        n = self._state_count()
        outputs = []
        if self.attention != "none":
            top = m.get_layer(f"bi_encoder_{self.layers}" if self.bidirectional else f"encoder_{self.layers}")
            outputs = [top.output[0], m.get_layer("source_mask").output]
        for j in range(self.decoder_layers):
            i = j if self.decoder_layers == self.layers else self.layers - 1
            if self.bidirectional:
                states = [m.get_layer(f"encoder_{i + 1}_state_{k + 1}").output for k in range(n)]
            else:
                states = list(m.get_layer(f"encoder_{i + 1}").output[1:])
            outputs.extend(states)
        self.encoder_model_ = keras.Model(source_ids, outputs, name="encoder")

    def encode(self, source_ids):
        """Run the encoder: returns ``(context, state)`` for ``step``: context is
        ``[encoder_outputs, source_mask, attention_keys]`` (the keys: the encoder side of the
        attention score, computed here once per sentence rather than at every step; empty
        without attention), state the decoder's initial states."""
        out = self.encoder_model_(source_ids, training=False)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        if self.attention == "none":
            return [], out
        values, mask = out[0], out[1]
        context = [values, mask]
        if self._attention.score != "dot":  # dot scores use the encoder outputs as they are
            context.append(self._attention.keys(values))
        return context, out[2:]

    def step(self, tokens, state, context):
        """One decoding step; see ``stages.beam_search``."""
        return self._decoder_step(
            tokens,
            state,
            self._target_embedding,
            self._decoder_rnns,
            self._attention,
            self._combine,
            context if self._attention is not None else None,
        )

    def search_model(self, bos_id: int, eos_id: int, beam_width: int = 1, max_length: int = 50, length_penalty: float = 0.0, attention: bool = False, n_best: int = 1):
        """A Keras model mapping padded source ids to decoded target ids (greedy when
        ``beam_width`` is 1, else beam search), usable with ``predict`` and in an export.
        ``n_best``: how many hypotheses must be final before a sentence stops early.

        Its outputs are ``{"tokens": (batch, beams, max_length), "scores": (batch, beams)}``
        plus ``"attention": (batch, beams, max_length, source_length)`` when asked for.
        """
        self.check_fitted()
        return SearchModel(self, bos_id, eos_id, beam_width, max_length, length_penalty, attention, n_best)


class SearchModel(keras.Model):
    """Greedy or beam search around a fitted ``RNNSeq2Seq`` (shares its layers and weights)."""

    def __init__(self, stage, bos_id, eos_id, beam_width, max_length, length_penalty, attention=False, n_best=1):
        super().__init__(name="search")
        self.stage = stage
        self.encoder = stage.encoder_model_
        self.decoder_layers = [stage._target_embedding, *stage._decoder_rnns, stage._logits] + (
            [stage._attention, stage._combine] if stage._attention is not None else []
        )
        self.bos_id, self.eos_id = int(bos_id), int(eos_id)
        self.beam_width, self.max_length = int(beam_width), int(max_length)
        self.length_penalty = float(length_penalty)
        self.with_attention = bool(attention) and stage._attention is not None
        self.n_best = int(n_best)
        self.built = True

    def call(self, source_ids):
        from .beam_search import beam_search, greedy_search

        source_ids = ops.cast(source_ids, "int32")
        context, state = self.stage.encode(source_ids)
        batch = ops.shape(source_ids)[0]
        source_length = ops.shape(source_ids)[1] if self.with_attention else None
        common = dict(
            batch_size=batch,
            bos_id=self.bos_id,
            eos_id=self.eos_id,
            max_length=self.max_length,
            source_length=source_length,
            banned_ids=(0, self.bos_id),
        )
        if self.beam_width == 1:
            tokens, scores, attn = greedy_search(self.stage.step, state, context, **common)
            tokens = ops.expand_dims(tokens, 1)
            scores = ops.expand_dims(scores, 1)
            attn = ops.expand_dims(attn, 1) if attn is not None else None
        else:
            tokens, scores, attn = beam_search(
                self.stage.step, state, context, beam_width=self.beam_width, alpha=self.length_penalty, n_best=self.n_best, **common
            )
        out = {"tokens": tokens, "scores": scores}
        if attn is not None:
            out["attention"] = attn
        return out


# -- rnn_language_model --------------------------------------------------------------------------------
@register("model", "rnn_language_model")
class RNNLanguageModel(_GenerativeModel):
    """Recurrent next-token language model.

    ``<bos>`` + tokens -> vectors -> [spatial dropout] -> RNN x ``layers`` -> dropout -> logits
    over the vocabulary; trained to predict tokens + ``<eos>``.

    Args:
        cell: ``simple_rnn``, ``lstm`` or ``gru``.
        units: units per recurrent layer.
        layers: stacked recurrent layers.
        dropout, recurrent_dropout, input_dropout: as for ``rnn_seq2seq``.
        label_smoothing: label smoothing of the training loss (0 to < 1).
        recurrent_initializer, kernel_initializer, optimizer, learning_rate, clipnorm, clipvalue,
        ema_momentum: as for ``rnn_classifier``.

    Example:
        >>> RNNLanguageModel(cell="lstm", units=8).get_config()["layers"]
        1
    """

    #: A language model reads left to right only.
    bidirectional = False

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 256,
        layers: int = 1,
        dropout: float = 0.2,
        recurrent_dropout: float = 0.0,
        input_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        recurrent_initializer: str = "orthogonal",
        kernel_initializer: str = "glorot_uniform",
        optimizer: str = "adam",
        learning_rate: float = 2e-3,
        clipnorm: float | None = 1.0,
        clipvalue: float | None = None,
        ema_momentum: float | None = None,
    ):
        super().__init__()
        self.model_ = None

    def _validate(self):
        self._validate_common()

    def build(self, input_layer, vocab_size: int, initial_weights=None):
        """Build and compile the model from the vectorizer's input layer."""
        input_layer = _renamed(input_layer, "token_embedding")
        ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = input_layer(ids)
        if self.input_dropout:
            x = keras.layers.SpatialDropout1D(self.input_dropout, name="input_dropout")(x)
        for i in range(self.layers):
            x = self._decoder_cell(self.units, f"rnn_{i + 1}")(x)[0]
        x = ClearMask(name="clear_mask")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="output_dropout")(x)
        logits = keras.layers.Dense(vocab_size, name="logits")(x)
        model = keras.Model(ids, logits, name="rnn_language_model")
        if initial_weights is not None:
            input_layer.set_weights([initial_weights])
        self._compile(model)
        self.model_ = model
        self._collect_layers()
        return self

    def _collect_layers(self):
        m = self.model_
        self._embedding = m.get_layer("token_embedding")
        self._rnns = [m.get_layer(f"rnn_{i + 1}") for i in range(self.layers)]
        self._logits = m.get_layer("logits")

    def initial_state(self, batch_size: int):
        """Zero states for ``batch_size`` rows."""
        return [ops.zeros((batch_size, self.units)) for _ in range(self.layers * self._state_count())]

    def step(self, tokens, state, context=None):
        """One step: ``(log_probs, new_state, None)``."""
        return self._decoder_step(tokens, state, self._embedding, self._rnns)


# -- decoders ------------------------------------------------------------------------------------------
def detokenize(tokens, mode: str = "auto", language: str | None = None) -> str:
    """Join tokens into text.

    Args:
        tokens: the tokens.
        mode: ``space`` (join with spaces), ``none`` (join with nothing: Chinese, Japanese),
            ``treebank`` (spaces, but none before punctuation and clitics: English and other
            space-separated languages) or ``auto`` (``none`` for languages written without
            spaces, such as ``zh``, else ``treebank``).
        language: the text's language code (for ``auto``).

    Example:
        >>> detokenize(["a", "dog", "'s", "ball", "."], language="en")
        "a dog's ball."
        >>> detokenize(["我", "爱", "你", "。"], language="zh")
        '我爱你。'
    """
    if mode == "auto":
        code = (language or "").lower().replace("_", "-").split("-")[0]
        mode = "none" if code in UNSPACED_LANGUAGES else "treebank"
    tokens = [str(t) for t in tokens]
    if mode == "none":
        return _join_unspaced(tokens)
    if mode == "space":
        return " ".join(tokens)
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    return TreebankWordDetokenizer().detokenize(tokens)


_LATIN_RUN = re.compile(r"^[A-Za-z0-9]")


def _join_unspaced(tokens):
    # Chinese text has no spaces, but Latin words inside it (names, numbers) keep one between them.
    out = []
    for tok in tokens:
        if out and _LATIN_RUN.match(tok) and _LATIN_RUN.match(out[-1][-1:]):
            out.append(" ")
        out.append(tok)
    return "".join(out)


DETOKENIZE = ("auto", "space", "none", "treebank")


@register("decoder", "text")
class TextDecoder(Stage):
    """Turns target ids into text, with the search settings used to find them.

    Args:
        beam_width: hypotheses kept per sentence; 1 is greedy search.
        length_penalty: GNMT length-penalty exponent alpha (0: rank by raw log-probability,
            which favours short outputs; 0.6-1.0 is usual with beams).
        max_length: most target tokens generated per sentence (``<eos>`` included); decoding
            always stops there.
        detokenize: ``auto`` (by the target language: no spaces for Chinese / Japanese, nltk
            Treebank rules otherwise), ``space``, ``none`` or ``treebank``.
        n_best: how many hypotheses each answer lists under ``alternatives`` (<= beam_width;
            1 lists none).
        capitalize: upper-case the first character of each translation (Python's
            ``str.upper``), for models whose target tokenizer lower-cases: sentence-initial
            capitals then match cased references (cased BLEU). The exported SavedModel does the
            same in the graph.

    Example:
        >>> TextDecoder(beam_width=5, length_penalty=0.6).get_config()["beam_width"]
        5
        >>> TextDecoder(capitalize=True).to_text(["a", "dog", "."], "en")
        'A dog.'
    """

    def __init__(self, beam_width: int = 1, length_penalty: float = 0.0, max_length: int = 50, detokenize: str = "auto", n_best: int = 1,
                 capitalize: bool = False):
        super().__init__()

    def _validate(self):
        from .beam_search import check_search_options

        try:
            check_search_options(self.beam_width, self.max_length, self.length_penalty, path="")
        except ConfigError as err:
            raise ConfigError(err.key, err.requirement, err.received) from None
        check_choice("detokenize", self.detokenize, DETOKENIZE)
        check_int("n_best", self.n_best, minimum=1)
        check_bool("capitalize", self.capitalize)
        if self.n_best > self.beam_width:
            raise ConfigError("n_best", f"must be <= beam_width ({self.beam_width})", self.n_best)

    def transform(self, batch):
        return batch

    def to_text(self, tokens, language=None) -> str:
        text = detokenize(tokens, self.detokenize, language)
        return text[:1].upper() + text[1:] if self.capitalize else text

    def decode(self, token_ids, scores, vocabulary, eos_id, language=None, n_best=None) -> list[dict]:
        """Answers from search results.

        Args:
            token_ids: int ``(sentences, beams, steps)`` ids, best beam first.
            scores: ``(sentences, beams)`` scores.
            vocabulary: the target vocabulary.
            eos_id: the ``<eos>`` id (ends a hypothesis).
            language: the target language, for ``detokenize: auto``.
            n_best: hypotheses to list (default: the stage's ``n_best``).

        Returns:
            One dict per sentence: ``translation`` (text), ``tokens``, ``score``, and
            ``alternatives`` (``[{"translation", "score"}]``) when n_best > 1.
        """
        n_best = self.n_best if n_best is None else n_best
        answers = []
        for rows, row_scores in zip(np.asarray(token_ids), np.asarray(scores)):
            hyps = []
            for ids, score in zip(rows[:n_best], row_scores[:n_best]):
                tokens = ids_to_tokens(ids, vocabulary, eos_id)
                hyps.append((tokens, float(score)))
            tokens, score = hyps[0]
            answer = {"translation": self.to_text(tokens, language), "tokens": tokens, "score": score}
            if n_best > 1:
                answer["alternatives"] = [{"translation": self.to_text(t, language), "score": s} for t, s in hyps]
            answers.append(answer)
        return answers


def ids_to_tokens(ids, vocabulary, eos_id) -> list[str]:
    """Tokens of one id row up to (not including) ``<eos>``; padding and specials are dropped."""
    ids = [int(i) for i in ids]
    if eos_id in ids:
        ids = ids[: ids.index(eos_id)]
    return vocabulary.inverse_transform([ids])[0]


@register("decoder", "sampler")
class SamplerDecoder(Stage):
    """Generation settings of a language model: how many tokens, and how each is drawn.

    Args:
        max_tokens: tokens generated after the prompt (generation also stops at ``<eos>``).
        temperature: divides the logits before sampling; 0 picks the most likely token
            (greedy), below 1 sharpens, above 1 flattens.
        top_k: sample among the ``top_k`` most likely tokens only (0: all).
        seed: random seed of the sampler (null: a fresh one each call).
        detokenize: ``auto`` (by ``data.language``), ``space``, ``none`` or ``treebank``.

    Example:
        >>> SamplerDecoder(temperature=0.8, top_k=20).get_config()["top_k"]
        20
    """

    def __init__(self, max_tokens: int = 50, temperature: float = 1.0, top_k: int = 0, seed: int | None = None, detokenize: str = "auto"):
        super().__init__()

    def _validate(self):
        check_int("max_tokens", self.max_tokens, minimum=1)
        check_float("temperature", self.temperature, 0.0)
        check_int("top_k", self.top_k, minimum=0)
        check_int("seed", self.seed, minimum=0, allow_none=True)
        check_choice("detokenize", self.detokenize, DETOKENIZE)

    def transform(self, batch):
        return batch

    def to_text(self, tokens, language=None) -> str:
        return detokenize(tokens, self.detokenize, language)

    @staticmethod
    def pick(log_probs: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator, banned=()) -> int:
        """Draw one token id from ``log_probs`` (1-D) with temperature and top-k."""
        logits = np.asarray(log_probs, dtype=np.float64).copy()
        for b in banned:
            logits[b] = -np.inf
        if temperature == 0:
            return int(np.argmax(logits))
        logits = logits / temperature
        if top_k and top_k < len(logits):
            cutoff = np.partition(logits, -top_k)[-top_k]
            logits[logits < cutoff] = -np.inf
        logits -= logits.max()
        p = np.exp(logits)
        p /= p.sum()
        return int(rng.choice(len(p), p=p))
