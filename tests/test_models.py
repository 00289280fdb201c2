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
@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
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


def test_classifier_padding_does_not_change_the_answer():
    m = _build(cell="gru", pooling="max")
    a = m.transform(np.array([[2, 3, 0, 0, 0]]))
    b = m.transform(np.array([[2, 3, 0]]))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_classifier_save_and_load_round_trip(tmp_path):
    m = _build()
    m.save_assets(str(tmp_path))
    loaded = RNNClassifier(units=4)
    loaded.load_assets(str(tmp_path))
    x = np.array([[2, 3, 4, 0, 0]])
    np.testing.assert_allclose(loaded.transform(x), m.transform(x), rtol=1e-6)


def test_classifier_load_refuses_lambda_layers(tmp_path):
    inp = keras.Input(shape=(3,))
    out = keras.layers.Lambda(lambda x: x * 2)(inp)
    keras.Model(inp, out).save(str(tmp_path / "model.keras"))
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        RNNClassifier().load_assets(str(tmp_path))


def test_classifier_missing_model_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.keras is missing"):
        RNNClassifier().load_assets(str(tmp_path))
