"""The ``rnn_seq2seq`` encoder-decoder and the ``rnn_language_model`` stages.

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

import keras
from keras import ops

from ..base import check_choice, check_float, check_int
from ..errors import ConfigError
from ..models import CELLS, RecurrentModel
from ..registry import register
from .layers import ClearMask, MaskedAccuracy, MaskedSequenceLoss, PaddingMask, Perplexity, SequenceAttention, _as_state_list, _renamed

log = logging.getLogger("ktp")


class _GenerativeModel(RecurrentModel):
    """Shared parts of the sequence-generating models: compile, decoder step, save / load."""

    fitted_attributes = ("model_",)
    # Their datasets shuffle their own length buckets.
    shuffle_batches = False

    def _validate_common(self):
        super()._validate_common()
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0)
        if self.label_smoothing >= 1:
            raise ConfigError("label_smoothing", "must be < 1", self.label_smoothing)

    def _state_count(self) -> int:
        return 2 if self.cell == "lstm" else 1

    def _recurrent_layer(self, units: int, name: str):
        """One recurrent layer of the encoder or decoder: every output step and the final states."""
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

    def evaluate(self, data) -> dict:
        """Loss, token accuracy and perplexity over batches (``stages.batching.LengthBatches`` or
        a dataset of them)."""
        self.check_fitted()
        data = data.for_fit() if hasattr(data, "for_fit") else data
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
            layer = self._recurrent_layer(self.units, f"encoder_{i + 1}")
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
            outs = self._recurrent_layer(self.decoder_units, f"decoder_{j + 1}")(y, initial_state=init)
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
        from ..beam_search import beam_search, greedy_search

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
            x = self._recurrent_layer(self.units, f"rnn_{i + 1}")(x)[0]
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
