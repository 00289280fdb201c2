"""Model stages: Keras recurrent networks built from the vectorizer's input layer."""

from __future__ import annotations

import os

import keras

from .errors import ConfigError, DataError, one_line

from .registry import register

from .base import (
    MAX_DENSE_UNITS,
    MAX_ENSEMBLE,
    MAX_LAYERS,
    MAX_UNITS,
    Stage,
    check_bool,
    check_choice,
    check_float,
    check_int,
)
from .layers import NGRAM_NORMS, AttentionPooling, MaskedPooling, NgramBag, TokenDropout

CELLS = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "adagrad", "nadam")
POOLINGS = ("last", "max", "mean", "mean_max", "attention")


class AveragedWeights(keras.callbacks.Callback):
    """Validate, score and checkpoint with the optimizer's moving average of the weights.

    With ``use_ema`` a Keras optimizer keeps an exponential moving average of the trainable
    weights (Polyak averaging) and copies it into the model when ``fit`` ends. This callback,
    first in the list, also puts the average in the model for each epoch's validation and
    ``on_epoch_end`` (so early stopping, best-epoch restoring, checkpoints and dev scorers
    judge the weights that will be kept), and puts the raw weights back before the next epoch
    trains. Unlike ``keras.callbacks.SwapEMAWeights`` it never writes the optimizer's
    average, so the final copy is the average also when early stopping ends the run.
    """

    def __init__(self):
        super().__init__()
        self._raw = None

    def _pairs(self):
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        averages = getattr(optimizer, "_model_variables_moving_average", None)
        if not getattr(optimizer, "use_ema", False) or averages is None:
            raise ValueError("AveragedWeights needs a built optimizer with use_ema=True")
        return list(zip(optimizer._trainable_variables, averages))

    def _average_in(self):
        if self._raw is not None:
            return
        pairs = self._pairs()
        self._raw = [keras.ops.convert_to_numpy(v) for v, _ in pairs]
        for variable, average in pairs:
            # A copy: on JAX the two variables must not share a buffer (the train step
            # donates its state buffers).
            variable.assign(keras.ops.convert_to_numpy(average))

    def _raw_in(self):
        if self._raw is None:
            return
        for (variable, _), value in zip(self._pairs(), self._raw):
            variable.assign(value)
        self._raw = None

    def on_train_begin(self, logs=None):
        self._raw = None

    def on_train_end(self, logs=None):
        # ``fit`` has just copied the averages into the model by assignment, which on JAX
        # leaves each weight sharing its buffer with the optimizer's average; the next
        # compiled call donates one and would delete the other (then saving fails). Give
        # the weights their own copies.
        self._raw = None
        for variable, average in self._pairs():
            variable.assign(keras.ops.convert_to_numpy(average))

    def on_epoch_begin(self, epoch, logs=None):
        self._raw_in()

    def on_test_begin(self, logs=None):
        self._average_in()

    def on_epoch_end(self, epoch, logs=None):
        self._average_in()


class RecurrentModel(Stage):
    """Shared options and plumbing of the recurrent model stages.

    Subclasses implement ``_outputs(x, n_outputs, ...)`` and ``_loss``.
    """

    fitted_attributes = ("model_",)

    def _validate_common(self):
        check_choice("cell", self.cell, tuple(CELLS))
        check_int("units", self.units, minimum=1, maximum=MAX_UNITS)
        check_int("layers", self.layers, minimum=1, maximum=MAX_LAYERS)
        check_bool("bidirectional", self.bidirectional)
        check_float("dropout", self.dropout, 0.0, 1.0)
        check_float("recurrent_dropout", self.recurrent_dropout, 0.0, 1.0)
        check_float("input_dropout", self.input_dropout, 0.0, 1.0)
        if self.dropout >= 1 or self.recurrent_dropout >= 1 or self.input_dropout >= 1:
            raise ConfigError("dropout", "rates must be < 1", (self.dropout, self.recurrent_dropout, self.input_dropout))
        for name in ("recurrent_initializer", "kernel_initializer"):
            value = getattr(self, name)
            try:
                keras.initializers.get(value)
            except (ValueError, TypeError):
                raise ConfigError(name, "must name a Keras initializer such as orthogonal or glorot_uniform", value) from None
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("learning_rate", self.learning_rate, 0.0, open_min=True)
        check_float("clipnorm", self.clipnorm, 0.0, allow_none=True, open_min=True)
        check_float("clipvalue", self.clipvalue, 0.0, allow_none=True, open_min=True)
        momentum = getattr(self, "ema_momentum", None)
        check_float("ema_momentum", momentum, 0.0, 1.0, allow_none=True, open_min=True)
        if momentum is not None and momentum >= 1:
            raise ConfigError("ema_momentum", "must be below 1 (e.g. 0.99), or null for no weight averaging", momentum)

    def _recurrent(self, return_sequences: bool, name: str):
        layer = CELLS[self.cell](
            self.units,
            return_sequences=return_sequences,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            recurrent_initializer=self.recurrent_initializer,
            kernel_initializer=self.kernel_initializer,
            name=name,
        )
        if self.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{name}")
        return layer

    def _optimizer(self):
        config = {"learning_rate": self.learning_rate}
        if self.clipnorm is not None:
            config["clipnorm"] = self.clipnorm
        if self.clipvalue is not None:
            config["clipvalue"] = self.clipvalue
        if getattr(self, "ema_momentum", None) is not None:
            config.update(use_ema=True, ema_momentum=self.ema_momentum)
        return keras.optimizers.get({"class_name": self.optimizer, "config": config})

    def _fit_callbacks(self, callbacks) -> list:
        """The callbacks for ``model_.fit``: with ``ema_momentum``, first the one that puts the
        averaged weights in the model for validation and for every later callback."""
        callbacks = list(callbacks)
        optimizer = getattr(self.model_, "optimizer", None)
        if getattr(optimizer, "use_ema", False):
            callbacks.insert(0, AveragedWeights())
        return callbacks

    #: whether the order of the batches is also shuffled each pass, as Keras does with a
    #: ``PyDataset`` given to ``fit(shuffle=True)`` (``LengthBatches.for_fit`` does the same on
    #: TensorFlow). The generative models' batches shuffle their own length buckets only.
    shuffle_batches = True

    def fit(self, data, validation_data=None, epochs=10, batch_size=32, callbacks=(), verbose="auto", initial_epoch=0):
        """Train the built model on ``data``: ``(x, y)`` arrays, batched by ``batch_size``, or
        ``stages.batching.LengthBatches`` (or another Keras ``PyDataset``) of batches, with
        ``validation_data`` of the same kind. Returns ``self`` (history in ``history_``)."""
        self.check_fitted()
        if isinstance(data, tuple):
            given = {"x": data[0], "y": data[1], "batch_size": batch_size}
        elif hasattr(data, "for_fit"):
            x = data.for_fit(shuffle_order=self.shuffle_batches)
            given = {"x": x, "shuffle": self.shuffle_batches and x is data}
        else:
            given = {"x": data, "shuffle": self.shuffle_batches}
        if hasattr(validation_data, "for_fit"):
            validation_data = validation_data.for_fit()
        self._build_optimizer()
        history = self.model_.fit(
            **given,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=self._fit_callbacks(callbacks),
            verbose=verbose,
            initial_epoch=initial_epoch,
        )
        self.history_ = history.history
        return self

    def _build_optimizer(self):
        """Create the optimizer's variables before training. Keras' TensorFlow trainer would
        create them while tracing the first train step, and a ``tf.function`` that creates
        variables is traced twice: building them first saves one trace of every fit
        (the same variables, with the same initial values)."""
        optimizer = getattr(self.model_, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model_.trainable_variables)

    def transform(self, batch, batch_size=256):
        """Model outputs (probabilities) for an id array."""
        self.check_fitted()
        return self.model_.predict(batch, batch_size=batch_size, verbose=0)

    def save_assets(self, directory):
        self.check_fitted()
        self.model_.save(os.path.join(directory, "model.keras"))

    def load_assets(self, directory):
        from . import layers  # noqa: F401  (registers the custom layers before loading)

        self.model_ = load_keras_model(os.path.join(directory, "model.keras"))


def load_keras_model(path: str):
    """Load a ``model.keras`` file in Keras' safe mode, which refuses Lambda layers and other
    serialized code; every failure (refused, damaged, not a Keras file) is a one-line
    DataError naming the file.

    Raises:
        FileNotFoundError: the file is missing.
        DataError: it is a symbolic link or cannot be loaded.
    """
    if os.path.islink(path):
        raise DataError(f"{path} is a symbolic link; a saved pipeline's assets must be plain files", path=path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: the saved pipeline's Keras model")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # noqa: BLE001  (Keras raises many kinds for a tampered file)
        raise DataError(f"{path} cannot be loaded (safe mode): {type(err).__name__}: {one_line(err, 300)}", path=path) from err


def _vocab_size(input_layer) -> int:
    """The number of token ids the vectorizer's input layer takes."""
    for name in ("input_dim", "depth"):  # keras.layers.Embedding, layers.OneHot
        size = getattr(input_layer, name, None)
        if isinstance(size, int):
            return size
    raise ConfigError("ngrams", f"needs the vocabulary size, which the input layer {type(input_layer).__name__} does not give", None)


@register("model", "rnn_classifier")
class RNNClassifier(RecurrentModel):
    """Many-to-one recurrent text classifier.

    ids -> one-hot or embedding -> [dropout] -> stacked (bi)RNN -> pooling -> dense head -> softmax
    (single-label) or sigmoid (multi-label).

    Args:
        cell: ``simple_rnn``, ``lstm`` or ``gru``.
        units: units per recurrent layer (per direction when bidirectional).
        layers: number of stacked recurrent layers.
        bidirectional: read the text both ways and concatenate.
        dropout: dropout on each recurrent layer's inputs and before the head.
        recurrent_dropout: dropout on the recurrent state (note: > 0 disables cuDNN kernels).
        input_dropout: spatial dropout on the token vectors (drops whole embedding channels).
        token_dropout: word dropout: in training, each token becomes ``<unk>`` with this
            probability (``TokenDropout``), so the network learns to do without any one word
            (the ``ngrams`` bag still sees every word).
        pooling: how the sequence becomes one vector: ``last`` (final state), ``max`` or ``mean``
            over the non-padding steps, ``mean_max`` (both, concatenated), or ``attention`` (a
            weighted mean whose weights a learned scorer gives each step, as in self-attentive
            classifiers).
        dense_units: sizes of hidden dense layers in the head (empty: none).
        recurrent_initializer: initializer of the recurrent kernels; ``orthogonal`` (default)
            keeps gradients from vanishing or exploding early in training.
        kernel_initializer: initializer of the input kernels.
        optimizer: ``adam``, ``adamw``, ``rmsprop``, ``sgd``, ``adagrad`` or ``nadam``.
        learning_rate: the optimizer's learning rate.
        clipnorm: clip each gradient to this norm (the classic remedy for exploding gradients).
        clipvalue: clip each gradient element to [-clipvalue, clipvalue].
        ema_momentum: null (off) or the momentum (e.g. 0.99) of an exponential moving average
            of the weights kept during training (Polyak averaging). Validation, early stopping,
            best-epoch restoring and checkpoints use the averaged weights, and they are the ones
            saved. It smooths the noisy last steps of an epoch (measured: +0.6 point on one
            SST-2 BiGRU, nothing on an SST-2 ensemble or on Resume NER).
        ngrams: 0 (off) or n: add a linear bag-of-n-grams model to the network's logits (the
            "wide" part of a wide-and-deep model, as in fastText): a trained score per label for
            each token and for each hashed n-gram of 2..n consecutive tokens, summed over the
            text. It learns word-pair cues ("not good") directly and with little data
            (docs/results_classification.md has the measured gains).
        ngram_buckets: hash buckets shared by the n-grams of 2+ tokens (collisions share a
            score); the bag holds ``(vocabulary + buckets) x labels`` weights.
        ngram_scale: multiplies the bag's output; with Adam the bag then learns about this many
            times faster than the network (its scores start at zero). The bag is a sum, so it
            grows with the text: ChnSentiCorp (about 60 words a review) did best at 1 (at 10
            the bag overfit in the first epoch), the short SST-2 sentences at 10.
        ngram_norm: ``sum`` (the default: the bag's scores add up over the text), ``mean``
            (divided by the text's token count) or ``sqrt`` (divided by its square root, like
            the L2-normalised rows of a TF-IDF model): the bag's output then no longer grows
            with the length of the text.
        ensemble: train this many networks of this shape one after another (seeds ``seed``,
            ``seed + 1``, ...), each with its own embedding and its own best epoch, and answer
            with the mean of their probabilities. One saved Keras model holds them all. Costs
            N times the training and prediction time; on small corpora it usually buys some
            accuracy (about one point on ChnSentiCorp).

    Example:
        >>> m = RNNClassifier(cell="gru", units=16)
        >>> m.get_config()["cell"]
        'gru'
    """

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 128,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.2,
        recurrent_dropout: float = 0.0,
        input_dropout: float = 0.0,
        token_dropout: float = 0.0,
        pooling: str = "max",
        dense_units: list[int] = (),
        recurrent_initializer: str = "orthogonal",
        kernel_initializer: str = "glorot_uniform",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        clipnorm: float | None = 5.0,
        clipvalue: float | None = None,
        ema_momentum: float | None = None,
        ngrams: int = 0,
        ngram_buckets: int = 1 << 18,
        ngram_scale: float = 1.0,
        ngram_norm: str = "sum",
        ensemble: int = 1,
    ):
        super().__init__()
        self.model_ = None

    def _validate(self):
        self._validate_common()
        check_int("ensemble", self.ensemble, minimum=1, maximum=MAX_ENSEMBLE)
        check_float("token_dropout", self.token_dropout, 0.0, 1.0)
        check_int("ngrams", self.ngrams, minimum=0, maximum=5)
        check_int("ngram_buckets", self.ngram_buckets, minimum=2, maximum=1 << 24)
        check_float("ngram_scale", self.ngram_scale, 0.0, open_min=True)
        check_choice("ngram_norm", self.ngram_norm, NGRAM_NORMS)
        check_choice("pooling", self.pooling, POOLINGS)
        if (
            not isinstance(self.dense_units, (list, tuple))
            or len(self.dense_units) > MAX_LAYERS
            or any(isinstance(u, bool) or not isinstance(u, int) or not 1 <= u <= MAX_DENSE_UNITS for u in self.dense_units)
        ):
            raise ConfigError(
                "dense_units",
                f"must be a list of at most {MAX_LAYERS} integers, each >= 1 and <= {MAX_DENSE_UNITS}",
                self.dense_units,
            )

    def build(self, input_layer, n_outputs: int, multi_label: bool = False, initial_weights=None, member=None):
        """Build and compile the Keras model.

        Args:
            input_layer: the vectorizer's layer mapping ids to vectors.
            n_outputs: number of labels.
            multi_label: sigmoid outputs and binary cross-entropy instead of softmax.
            initial_weights: pretrained embedding matrix for ``input_layer``, or None.
            member: with ``ensemble`` > 1, the index of the member being built (it names the
                network ``member_<index + 1>``); ``combine`` then joins the trained members.
        """
        ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = input_layer(TokenDropout(self.token_dropout, name="token_dropout")(ids) if self.token_dropout else ids)
        if self.input_dropout:
            x = keras.layers.SpatialDropout1D(self.input_dropout, name="input_dropout")(x)
        for i in range(self.layers):
            last = i == self.layers - 1
            x = self._recurrent(return_sequences=not (last and self.pooling == "last"), name=f"rnn_{i + 1}")(x)
        if self.pooling in ("max", "mean"):
            x = MaskedPooling(self.pooling, name=f"{self.pooling}_pool")(x)
        elif self.pooling == "mean_max":
            x = keras.layers.Concatenate(name="mean_max_pool")(
                [MaskedPooling("mean", name="mean_pool")(x), MaskedPooling("max", name="max_pool")(x)]
            )
        elif self.pooling == "attention":
            x = AttentionPooling(self.units, name="attention_pool")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        for j, size in enumerate(self.dense_units):
            x = keras.layers.Dense(size, activation="relu", name=f"dense_{j + 1}")(x)
        activation = self._output_activation(multi_label)
        if self.ngrams:
            logits = keras.layers.Dense(n_outputs, name="logits")(x)
            bag = NgramBag(
                _vocab_size(input_layer), n_outputs, self.ngrams, self.ngram_buckets, self.ngram_scale,
                norm=self.ngram_norm, name="ngram_bag",
            )(ids)
            out = keras.layers.Activation(activation, name="scores")(keras.layers.Add(name="wide_and_deep")([logits, bag]))
        else:
            out = keras.layers.Dense(n_outputs, activation=activation, name="scores")(x)
        model = keras.Model(ids, out, name=self.network_name if member is None else f"member_{member + 1}")
        if initial_weights is not None:
            input_layer.set_weights([initial_weights])
        self._compile(model, multi_label)
        self.model_ = model
        return self

    #: The Keras model's name (a joined ensemble adds ``_ensemble``).
    network_name = "rnn_classifier"

    @staticmethod
    def _output_activation(multi_label: bool) -> str:
        return "sigmoid" if multi_label else "softmax"

    def _compile(self, model, multi_label: bool):
        if multi_label:
            loss, metrics = "binary_crossentropy", [keras.metrics.BinaryAccuracy(name="accuracy")]
        else:
            loss, metrics = "sparse_categorical_crossentropy", [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        model.compile(optimizer=self._optimizer(), loss=loss, metrics=metrics)

    def combine(self, members):
        """Join trained member networks (built with ``member=i``) into one model whose output
        is the mean of their probabilities; it becomes ``model_``."""
        if len(members) != self.ensemble:
            raise ValueError(f"combine got {len(members)} member networks but ensemble is {self.ensemble}")
        if len(members) == 1:
            self.model_ = members[0]
            return self
        ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        out = keras.layers.Average(name="ensemble_mean")([m(ids) for m in members])
        # Not compiled: it only predicts (members train on their own), and an unused optimizer
        # would be saved empty and warn on every load.
        self.model_ = keras.Model(ids, out, name=f"{self.network_name}_ensemble")
        return self
