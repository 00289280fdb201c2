import keras
import numpy as np
import pytest

from stages.models import RNNClassifier
from stages.vectorizers import EmbeddingVectorizer, OneHotVectorizer


def _build(**options):
    m = RNNClassifier(units=4, **options)
    m.build(OneHotVectorizer(max_length=5).input_layer(10), n_outputs=3)
    return m


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean", "mean_max", "attention"])
def test_classifier_builds_every_cell_and_pooling(cell, pooling):
    m = _build(cell=cell, pooling=pooling)
    out = m.transform(np.array([[2, 3, 0, 0, 0]]))
    assert out.shape == (1, 3)
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-5)


def test_classifier_stacks_bidirectional_layers():
    m = _build(layers=2, bidirectional=True)
    names = [layer.name for layer in m.model_.layers]
    assert "bi_rnn_1" in names and "bi_rnn_2" in names


def test_classifier_uses_orthogonal_recurrent_initializer_by_default():
    m = _build(cell="lstm", bidirectional=False)
    rnn = m.model_.get_layer("rnn_1")
    assert isinstance(rnn.cell.recurrent_initializer, keras.initializers.Orthogonal)


def test_classifier_passes_gradient_clipping_to_the_optimizer():
    m = _build(clipnorm=1.5, clipvalue=None, optimizer="sgd", learning_rate=0.1)
    opt = m.model_.optimizer
    assert opt.clipnorm == 1.5 and isinstance(opt, keras.optimizers.SGD)


def test_classifier_multi_label_has_sigmoid_outputs():
    m = RNNClassifier(units=4)
    m.build(EmbeddingVectorizer(dim=4).input_layer(10), n_outputs=3, multi_label=True)
    out = m.transform(np.array([[2, 3]]))
    assert out.shape == (1, 3) and not np.isclose(out.sum(), 1.0)


@pytest.mark.parametrize("pooling", ["max", "mean_max", "attention"])
def test_classifier_padding_does_not_change_the_answer(pooling):
    m = _build(cell="gru", pooling=pooling)
    a = m.transform(np.array([[2, 3, 0, 0, 0]]))
    b = m.transform(np.array([[2, 3, 0]]))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["max", "mean_max", "attention"])
def test_classifier_save_and_load_round_trip(tmp_path, pooling):
    m = _build(pooling=pooling)
    m.save_assets(str(tmp_path))
    loaded = RNNClassifier(units=4, pooling=pooling)
    loaded.load_assets(str(tmp_path))
    x = np.array([[2, 3, 4, 0, 0]])
    np.testing.assert_allclose(loaded.transform(x), m.transform(x), rtol=1e-6)


def test_classifier_token_dropout_acts_in_training_only_and_survives_save(tmp_path):
    m = _build(token_dropout=0.5)
    assert m.model_.get_layer("token_dropout").rate == 0.5
    x = np.array([[2, 3, 4, 0, 0]])
    np.testing.assert_allclose(m.transform(x), m.transform(x))  # no dropout when predicting
    m.save_assets(str(tmp_path))
    loaded = RNNClassifier(units=4, token_dropout=0.5)
    loaded.load_assets(str(tmp_path))
    np.testing.assert_allclose(loaded.transform(x), m.transform(x), rtol=1e-6)
    assert "token_dropout" not in [layer.name for layer in _build().model_.layers]


def test_classifier_load_refuses_lambda_layers(tmp_path):
    inp = keras.Input(shape=(3,))
    out = keras.layers.Lambda(lambda x: x * 2)(inp)
    keras.Model(inp, out).save(str(tmp_path / "model.keras"))
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        RNNClassifier().load_assets(str(tmp_path))


def test_classifier_missing_model_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.keras is missing"):
        RNNClassifier().load_assets(str(tmp_path))


def _ema_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 10, size=(n, 5)).astype("int32")
    return x, (x[:, 0] > 5).astype("int32")


def test_classifier_weight_averaging_validates_and_keeps_the_averaged_weights(tmp_path):
    m = _build(ema_momentum=0.9, learning_rate=0.05)
    assert m.model_.optimizer.use_ema and m.model_.optimizer.ema_momentum == 0.9
    x, y = _ema_data()

    class Probe(keras.callbacks.Callback):
        """A user callback (after AveragedWeights, which ``fit`` puts first): at each epoch's
        end it must see the averaged weights, and the raw ones again when the next epoch trains."""

        def __init__(self):
            super().__init__()
            self.seen = {}

        def on_train_batch_end(self, batch, logs=None):
            self.seen["last_raw"] = self.model.get_weights()[-1].copy()

        def on_epoch_end(self, epoch, logs=None):
            self.seen[f"end{epoch}"] = self.model.get_weights()[-1].copy()
            self.seen[f"raw{epoch}"] = self.seen["last_raw"]

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0 and "end0" in self.seen and "begin1" not in self.seen:
                self.seen["begin1"] = self.model.get_weights()[-1].copy()

    probe = Probe()
    m.fit((x, y), validation_data=(x[:16], y[:16]), epochs=2, batch_size=8, callbacks=[probe], verbose=0)
    # epoch 1 ends with the averaged weights in the model, epoch 2 trains from the raw ones
    assert not np.allclose(probe.seen["end0"], probe.seen["raw0"])
    np.testing.assert_array_equal(probe.seen["begin1"], probe.seen["raw0"])
    # the validation figures are those of the averaged weights, which are the ones kept
    history = m.model_.history.history
    loss = m.model_.evaluate(x[:16], y[:16], verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, history["val_loss"][-1], rtol=1e-5)
    np.testing.assert_array_equal(m.model_.get_weights()[-1], probe.seen["end1"])
    for variable, average in zip(m.model_.optimizer._trainable_variables, m.model_.optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), keras.ops.convert_to_numpy(average))
    m.save_assets(str(tmp_path))  # on JAX this failed while weights and averages shared buffers
    loaded = RNNClassifier(units=4, ema_momentum=0.9)
    loaded.load_assets(str(tmp_path))
    np.testing.assert_allclose(loaded.transform(x[:4]), m.transform(x[:4]), rtol=1e-5)


@pytest.mark.parametrize("bad", [0, 1, 1.5, "0.99", True])
def test_classifier_weight_averaging_momentum_is_checked(bad):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="ema_momentum"):
        RNNClassifier(ema_momentum=bad)


def test_classifier_ngram_bag_is_added_to_the_logits_and_survives_save_load(tmp_path):
    m = _build(ngrams=2, ngram_buckets=64, ngram_scale=2.0, pooling="mean")
    x = np.array([[2, 3, 4, 0, 0], [5, 0, 0, 0, 0]], dtype="int32")
    before = m.transform(x)
    bag = m.model_.get_layer("ngram_bag")
    bag.set_weights([np.full_like(w, 0.5) * np.arange(w.shape[1]) for w in bag.get_weights()])
    after = m.transform(x)
    # the bag adds scale * (n-grams in the text) * [0, 0.5, 1.0] to the logits: 5 n-grams, 1 n-gram
    logit_shift = np.log(after) - np.log(before)
    logit_shift -= logit_shift[:, :1]
    np.testing.assert_allclose(logit_shift, [[0, 5.0, 10.0], [0, 1.0, 2.0]], rtol=1e-4, atol=1e-4)
    m.save_assets(str(tmp_path))
    loaded = RNNClassifier(units=4)
    loaded.load_assets(str(tmp_path))
    np.testing.assert_allclose(loaded.transform(x), after, rtol=1e-5)


def test_classifier_ngram_norm_divides_the_bag_and_is_checked(tmp_path):
    from pipeline.errors import ConfigError

    x = np.array([[2, 3, 4, 0, 0], [5, 0, 0, 0, 0]], dtype="int32")
    shifts = {}
    for norm in ("sum", "mean"):
        m = _build(ngrams=2, ngram_buckets=64, ngram_scale=2.0, pooling="mean", ngram_norm=norm)
        before = m.transform(x)
        bag = m.model_.get_layer("ngram_bag")
        bag.set_weights([np.full_like(w, 0.5) * np.arange(w.shape[1]) for w in bag.get_weights()])
        shift = np.log(m.transform(x)) - np.log(before)
        shifts[norm] = shift - shift[:, :1]
    # mean: 5 n-grams over 3 tokens, 1 n-gram over 1 token
    np.testing.assert_allclose(shifts["mean"], shifts["sum"] / np.array([[3.0], [1.0]]), rtol=1e-4, atol=1e-4)
    assert m.get_config()["ngram_norm"] == "mean"
    with pytest.raises(ConfigError, match="ngram_norm"):
        RNNClassifier(ngrams=2, ngram_norm="l2")


def test_tagger_weight_averaging_survives_the_learning_rate_schedule():
    from stages.taggers import RNNTagger

    t = RNNTagger(units=4, ema_momentum=0.95, learning_rate_decay=0.1)
    t.build(EmbeddingVectorizer(dim=4).input_layer(10), n_tags=3, steps_per_epoch=5)
    optimizer = t.model_.optimizer
    assert optimizer.use_ema and optimizer.ema_momentum == 0.95
    assert isinstance(optimizer._learning_rate, keras.optimizers.schedules.InverseTimeDecay)
    rng = np.random.default_rng(0)
    x, y = rng.integers(1, 10, size=(16, 5)).astype("int32"), rng.integers(0, 3, size=(16, 5)).astype("int32")

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.raw = self.model.get_weights()[-1].copy()

        def on_epoch_end(self, epoch, logs=None):
            self.end = self.model.get_weights()[-1].copy()
            self.average = keras.ops.convert_to_numpy(optimizer._model_variables_moving_average[-1])

    probe = Probe()
    t.fit(({"token_ids": x}, y), epochs=1, batch_size=8, callbacks=[probe], verbose=0)
    # the user's callback sees the averaged weights at the epoch's end, not the raw ones
    assert not np.allclose(probe.end, probe.raw)
    np.testing.assert_array_equal(probe.end, probe.average)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("units", 10**9, r"units must be an integer >= 1 and <= 16384"),
        ("layers", 65, r"layers must be an integer >= 1 and <= 64"),
        ("ensemble", 65, r"ensemble must be an integer >= 1 and <= 64"),
        ("dense_units", [10**6], r"dense_units must be a list of at most 64 integers, each >= 1 and <= 65536"),
    ],
)
def test_classifier_sizes_that_cannot_fit_in_memory_name_the_limit(option, value, message):
    from pipeline import ConfigError

    with pytest.raises(ConfigError, match=message):
        RNNClassifier(**{option: value})


def test_classifier_load_reports_a_file_that_is_not_a_keras_model(tmp_path):
    from pipeline import DataError

    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"model\.keras cannot be loaded \(safe mode\)"):
        RNNClassifier().load_assets(str(tmp_path))


def test_fit_builds_the_optimizer_before_keras_traces_the_train_step(monkeypatch):
    # Left to Keras' TensorFlow trainer, the optimizer's variables are created while the first
    # train step is traced, and TensorFlow then traces that step a second time.
    seen = []
    keras_fit = keras.Model.fit

    def fit(model, *args, **kwargs):
        seen.append((model.optimizer.built, len(model.optimizer.variables)))
        return keras_fit(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    m = _build(cell="gru")
    assert not m.model_.optimizer.built
    x = np.array([[2, 3, 0, 0, 0], [4, 5, 6, 0, 0]] * 4)
    m.fit((x, np.array([0, 1] * 4)), epochs=1, batch_size=4, verbose=0)
    # Built, with a momentum and a velocity per trainable weight (Adam) and the step counter.
    assert seen == [(True, 2 * len(m.model_.trainable_weights) + 2)]
