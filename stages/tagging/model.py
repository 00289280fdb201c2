"""The ``rnn_tagger`` model: many-to-many recurrent tagger, softmax or CRF.

The tagger reads one vector per token (from the vectorizer's layer, plus the vectors of its
token feature families, ``stages.tagging.features``), runs stacked (bi)recurrent layers over
the sentence and scores every tag at every step. The scores become tags either by a softmax per
token or by a linear-chain CRF (``output: crf``) that scores whole tag sequences and decodes
with Viterbi.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
from keras import ops

from ..base import check_bool, check_choice, check_float, check_int
from ..crf import CRF, CRFTaggerModel
from ..errors import ConfigError
from ..layers import TokenDropout
from ..models import RecurrentModel
from ..registry import register
from ..vectorizers import initial_matrix
from .families import LEGACY_OPTIONS, legacy_features, parse_features


def _flow(value) -> str:
    """A config value in YAML flow style, for messages (``{chars: {kind: cnn}}``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@register("model", "rnn_tagger")
class RNNTagger(RecurrentModel):
    """Many-to-many recurrent tagger: one tag per token, by softmax or CRF.

    ids (+ features) -> one-hot or embedding -> [dropout] -> stacked (bi)RNN -> dropout ->
    dense tag scores -> softmax, or CRF (Viterbi decoding, marginals by forward-backward).

    Args:
        cell: ``simple_rnn``, ``lstm`` or ``gru``.
        units: units per recurrent layer (per direction when bidirectional).
        layers: number of stacked recurrent layers.
        bidirectional: read the sentence both ways and concatenate.
        dropout: dropout on each recurrent layer's inputs and on the tag scorer's input.
        recurrent_dropout: dropout on the recurrent state.
        input_dropout: dropout on the token vectors (features included).
        token_dropout: word dropout: in training, each token id becomes ``<unk>`` with this
            probability (``TokenDropout``; the features stay), as Lample et al. (2016) replace
            rare words, so the tagger learns to tag from context and features alone.
        output: ``softmax`` (independent tags) or ``crf`` (a linear-chain CRF).
        crf_constraints: with ``crf``, forbid transitions the tag scheme does not allow
            (``O`` -> ``I-PER`` in BIO), in training and in decoding.
        features: the token feature families and their options, e.g. ``{"chars": {"kind":
            "cnn"}, "shape": {}}`` (see ``stages.tagging.features``: ``chars``, ``shape``,
            ``bigrams``, ``word_boundary``, ``lexicon``). The flat options of earlier versions
            (``char_features: cnn``, ``lexicon_dim: 50``, ...) are still read from configs,
            with a warning that shows this form.
        recurrent_initializer, kernel_initializer: initializers of the recurrent layers.
        optimizer, learning_rate, clipnorm, clipvalue: the optimizer and gradient clipping.
        learning_rate_decay: inverse-time decay per epoch: the rate in epoch ``e`` (from 0) is
            ``learning_rate / (1 + learning_rate_decay * e)``, applied smoothly per step
            (0: constant). It steadies the dev figures late in training.
        ema_momentum: null (off) or the momentum of a moving average of the weights that
            validation, the dev scorer, early stopping and the saved model use (see
            ``rnn_classifier``).
        ensemble: train this many taggers of this shape one after another (seeds ``seed``,
            ``seed + 1``, ...) and answer with their mean: a CRF ensemble decodes (Viterbi,
            marginals) with the mean of the members' per-token scores and the mean of their
            transition scores, i.e. it maximises the members' mean path score; a softmax
            ensemble averages the tag probabilities. One saved model holds all members.

    Example:
        >>> m = RNNTagger(cell="lstm", units=16, output="crf")
        >>> m.get_config()["output"]
        'crf'
    """

    fitted_attributes = ("model_",)

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 100,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.5,
        recurrent_dropout: float = 0.0,
        input_dropout: float = 0.0,
        token_dropout: float = 0.0,
        output: str = "crf",
        crf_constraints: bool = True,
        features: dict | None = None,
        recurrent_initializer: str = "orthogonal",
        kernel_initializer: str = "glorot_uniform",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        learning_rate_decay: float = 0.0,
        clipnorm: float | None = 5.0,
        clipvalue: float | None = None,
        ema_momentum: float | None = None,
        ensemble: int = 1,
    ):
        super().__init__()
        self.model_ = None
        self.pretrained_coverage_ = None

    def _validate(self):
        self._validate_common()
        check_choice("output", self.output, ("softmax", "crf"))
        check_bool("crf_constraints", self.crf_constraints)
        check_float("learning_rate_decay", self.learning_rate_decay, 0.0)
        check_float("token_dropout", self.token_dropout, 0.0, 1.0)
        check_int("ensemble", self.ensemble, minimum=1)
        self._features = parse_features(self.features)

    @classmethod
    def from_config(cls, config: dict, path: str = ""):
        """Build from ``config``; the flat feature options of earlier versions are translated
        into ``features`` with a warning that shows the new form."""
        if isinstance(config, dict) and any(k in LEGACY_OPTIONS for k in config):
            features, old, ignored = legacy_features(config)
            if config.get("features") is not None:
                raise ConfigError("features", f"cannot be combined with the older flat options {', '.join(old)}; keep only features",
                                  config["features"], path)
            config = {k: v for k, v in config.items() if k not in LEGACY_OPTIONS}
            config["features"] = features or None
            where = f"{path}: " if path else ""
            warnings.warn(
                f"{where}the flat tagger feature options ({', '.join(old)}) are deprecated; this config is read as "
                f"features: {_flow(features)}. Write that instead."
                + (f" Ignored, as before (their feature is off): {', '.join(ignored)}." if ignored else ""),
                FutureWarning, stacklevel=3,
            )
        return super().from_config(config, path)

    @property
    def uses_crf(self) -> bool:
        return self.output == "crf"

    @property
    def is_fitted(self) -> bool:
        return self.model_ is not None and all(f.is_fitted for f in self._features)

    # -- features ---------------------------------------------------------------------------
    def feature(self, name: str):
        """The feature family ``name`` (a ``TokenFeature``), or None when it is off."""
        return next((f for f in self._features if f.name == name), None)

    def feature_families(self) -> list:
        """The feature families that are on, in the order their vectors are concatenated."""
        return list(self._features)

    def fit_features(self, sentences, normalize=None) -> "RNNTagger":
        """Learn every feature family's state (character and bigram vocabularies, the lexicon)
        from tokenized training sentences.

        Args:
            sentences: ``TokenizedText`` objects (token lists with ``.raw`` token strings).
            normalize: the tokenizer's normalisation of one character (NFKC, lowercasing),
                applied to the lexicon's words so they match the normalised tokens.
        """
        self.pretrained_coverage_ = None
        for feature in self._features:
            feature.fit(sentences, normalize)
            for what, n_rows, _, rows in feature.start_matrices.values():
                self.pretrained_coverage_ = {**(self.pretrained_coverage_ or {}), what: {"rows": n_rows, "pretrained": len(rows)}}
        return self

    def feature_names(self) -> list[str]:
        """Names of the model inputs besides ``token_ids``, in a fixed order."""
        return [name for f in self._features for name in f.input_names]

    def feature_arrays(self, sentence) -> dict:
        """The extra inputs of one tokenized sentence, as unpadded numpy arrays."""
        out = {}
        for feature in self._features:
            out.update(feature.arrays(sentence))
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_decoder"] = state["_decoder_of"] = None
        return state

    # -- the network ------------------------------------------------------------------------
    def _tagger_optimizer(self, steps_per_epoch):
        if not self.learning_rate_decay:
            return self._optimizer()
        optimizer = self._optimizer()
        schedule = keras.optimizers.schedules.InverseTimeDecay(
            self.learning_rate, decay_steps=max(int(steps_per_epoch or 1), 1), decay_rate=self.learning_rate_decay
        )
        config = optimizer.get_config()
        config["learning_rate"] = keras.optimizers.schedules.serialize(schedule)
        return type(optimizer).from_config(config)

    def build(self, input_layer, n_tags: int, constraints=None, initial_weights=None, steps_per_epoch=None, member=None, seed=None):
        """Build and compile the Keras model.

        Args:
            input_layer: the vectorizer's layer mapping token ids to vectors.
            n_tags: number of tags.
            constraints: ``(transitions, start, end)`` 0/1 arrays of the allowed CRF moves
                (see ``stages.tag_schemes.allowed_transitions``), used when
                ``crf_constraints`` is on.
            initial_weights: pretrained embedding matrix for ``input_layer``, or None.
            steps_per_epoch: training batches per epoch (for ``learning_rate_decay``).
            member: with ``ensemble`` > 1, the index of the member being built (it names the
                network ``member_<index + 1>``); ``combine`` then joins the trained members.
            seed: the training seed; it draws the random rows (items without a pretrained
                vector) of the ``bigram_pretrained`` / ``lexicon_pretrained`` start matrices.
        """
        inputs = {"token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids")}
        ids = inputs["token_ids"]
        parts = [input_layer(TokenDropout(self.token_dropout, name="token_dropout")(ids) if self.token_dropout else ids)]
        for feature in self._features:
            feature_inputs = feature.inputs()
            inputs.update(feature_inputs)
            parts.extend(feature.vectors(feature_inputs))
        x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="token_features")(parts)
        if self.input_dropout:
            x = keras.layers.Dropout(self.input_dropout, name="input_dropout")(x)
        # The padding mask is given to the recurrent layers explicitly: Keras 3 loses it when
        # Concatenate joins a masked input (the word embeddings) with unmasked ones (features),
        # and the backward direction would then read the padding.
        mask = ops.not_equal(inputs["token_ids"], 0)
        for i in range(self.layers):
            x = self._recurrent(return_sequences=True, name=f"rnn_{i + 1}")(x, mask=mask)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="tagger_dropout")(x)
        scores = keras.layers.Dense(n_tags, name="tag_scores")(x)
        # For a CRF the per-token argmax is not the decoded answer, so its accuracy gets
        # another name; the pipeline logs the decoded tags' dev accuracy as val_accuracy.
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="emission_accuracy" if self.uses_crf else "accuracy")
        if self.uses_crf:
            allowed = {}
            if self.crf_constraints and constraints is not None:
                trans, start, end = constraints
                allowed = {"allowed_transitions": trans, "allowed_start": start, "allowed_end": end}
            out = CRF(n_tags, name="crf", **allowed)(scores)
            model = CRFTaggerModel(inputs, out, name="rnn_crf_tagger" if member is None else f"member_{member + 1}")
            model.compile(optimizer=self._tagger_optimizer(steps_per_epoch), metrics=[accuracy])
        else:
            out = keras.layers.Activation("softmax", name="tag_probs")(scores)
            model = keras.Model(inputs, out, name="rnn_tagger" if member is None else f"member_{member + 1}")
            model.compile(optimizer=self._tagger_optimizer(steps_per_epoch), loss="sparse_categorical_crossentropy", metrics=[accuracy])
        if initial_weights is not None:
            input_layer.set_weights([initial_weights])
        for feature in self._features:
            for name, (_, n_rows, dim, rows) in feature.start_matrices.items():
                layer = model.get_layer(name)
                getattr(layer, "embedding", layer).set_weights([initial_matrix(n_rows, dim, rows, seed=seed or 0)])
            feature.after_build(model)
        self.model_ = model
        return self

    def combine(self, members):
        """Join trained member networks (built with ``member=i``) into one model; it becomes
        ``model_``.

        With a CRF, the joined model's output is the mean of the members' per-token scores,
        followed by a CRF layer (named ``crf``, so decoding and export use it as a single
        tagger's) holding the mean of the members' transition scores: Viterbi then finds the
        tag sequence with the best mean path score. With softmax, the mean probabilities.
        The joined model is not compiled: it only predicts, and cannot be trained on.
        """
        if len(members) != self.ensemble:
            raise ValueError(f"combine got {len(members)} member networks but ensemble is {self.ensemble}")
        if len(members) == 1:
            self.model_ = members[0]
            return self
        first = members[0]
        inputs = {name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=name) for name, t in first.input.items()}
        outputs = [m(inputs) for m in members]
        mean = keras.layers.Average(name="ensemble_mean")(outputs)
        if not self.uses_crf:
            self.model_ = keras.Model(inputs, mean, name="rnn_tagger_ensemble")
            return self
        crfs = [m.crf for m in members]
        config = {k: v for k, v in crfs[0].get_config().items() if k not in ("name", "trainable", "dtype")}
        crf = CRF(name="crf", **config)
        out = crf(mean)
        crf.set_weights([np.mean(ws, axis=0) for ws in zip(*(c.get_weights() for c in crfs))])
        self.model_ = keras.Model(inputs, out, name="rnn_crf_tagger_ensemble")
        return self

    def transform(self, batch, batch_size=None):
        """Per-token tag scores for one padded batch (a dict of input arrays)."""
        self.check_fitted()
        return np.asarray(self.model_.predict_on_batch(batch))

    def decode_batch(self, batch) -> dict:
        """Tags for one padded batch, with what entity scores need.

        Returns:
            ``{"tags"}`` plus, for a CRF, ``scores`` (per-token tag scores), ``alpha``, ``beta``
            and ``log_z`` (forward-backward, see ``CRF.forward_backward``); for softmax,
            ``probs``. Viterbi and forward-backward run in a compiled model sharing the CRF.
        """
        self.check_fitted()
        if not self.uses_crf:
            probs = np.asarray(self.model_.predict_on_batch(batch))
            return {"tags": probs.argmax(axis=-1), "probs": probs}
        if getattr(self, "_decoder", None) is None or self._decoder_of is not self.model_:
            from ..crf import CRFDecoding

            token_ids = self.model_.input["token_ids"] if isinstance(self.model_.input, dict) else self.model_.input
            outputs = CRFDecoding(self.crf, name="crf_decoding")([self.model_.output, token_ids])
            self._decoder = keras.Model(self.model_.input, outputs, name="crf_decoder")
            self._decoder_of = self.model_
        tags, scores, alpha, beta, log_z = (np.asarray(v) for v in self._decoder.predict_on_batch(batch))
        return {"tags": tags, "scores": scores, "alpha": alpha, "beta": beta, "log_z": log_z}

    @property
    def crf(self) -> CRF:
        return self.model_.get_layer("crf")

    @property
    def is_ensemble(self) -> bool:
        """True once ``model_`` joins several trained members (see ``combine``)."""
        return self.model_ is not None and self.model_.name.endswith("_ensemble")

    # -- persistence ------------------------------------------------------------------------
    def save_assets(self, directory):
        self.check_fitted()
        self.model_.save(os.path.join(directory, "model.keras"))
        for feature in self._features:
            feature.save_assets(directory)

    def load_assets(self, directory):
        from .. import crf, layers  # noqa: F401  (registers the custom layers before loading)

        for feature in self._features:
            feature.load_assets(directory)
        path = os.path.join(directory, "model.keras")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: the saved pipeline's Keras model")
        self.model_ = keras.saving.load_model(path, safe_mode=True)
