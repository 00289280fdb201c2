import numpy as np

from stages.layers import MaskedPooling, OneHot


def test_onehot_layer_masks_padding():
    layer = OneHot(depth=3)
    ids = np.array([[1, 2, 0]])
    assert np.asarray(layer.compute_mask(ids)).tolist() == [[True, True, False]]


def test_masked_max_ignores_padding_steps():
    x = np.array([[[1.0], [2.0], [50.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    assert float(np.asarray(MaskedPooling("max")(x, mask=mask))[0, 0]) == 2.0


def test_masked_mean_ignores_padding_steps():
    x = np.array([[[1.0], [3.0], [50.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    assert float(np.asarray(MaskedPooling("mean")(x, mask=mask))[0, 0]) == 2.0


def test_masked_pooling_of_an_all_padding_row_is_zero():
    x = np.array([[[4.0], [5.0]]], dtype="float32")
    mask = np.array([[False, False]])
    for mode in ("max", "mean"):
        assert float(np.asarray(MaskedPooling(mode)(x, mask=mask))[0, 0]) == 0.0
