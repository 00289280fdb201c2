"""The one batcher of variable-length examples (stages.batching), used by taggers, translation
and language models."""

import numpy as np
import pytest

from stages.batching import LengthBatches, length_batches, pad, round_up


def _columns(n=50, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, n)
    return {
        "ids": [list(rng.integers(1, 9, t)) for t in lengths],
        "chars": [rng.integers(1, 9, (t, int(rng.integers(1, 6)))).astype("int32") for t in lengths],
        "vec": [rng.random((t, 3)).astype("float32") for t in lengths],
        "y": [list(rng.integers(0, 4, t)) for t in lengths],
    }


def test_round_up_gives_multiples_of_the_step_and_at_least_one_step():
    assert [round_up(n, 8) for n in (0, 1, 8, 9, 17)] == [8, 8, 8, 16, 24]


def test_pad_pads_time_to_the_step_and_further_axes_to_their_widest():
    out = pad([np.ones((2, 3), "int32"), np.ones((5, 1), "int32"), np.zeros((0, 0), "int32")], step=4)
    assert out.shape == (3, 8, 3) and out.dtype == np.int32
    assert out[0, :2].sum() == 6 and out[1, :5, 0].sum() == 5 and out[1, :, 1:].sum() == 0 and out[2].sum() == 0
    assert pad([[], [4, 5]]).dtype == np.int32  # an empty first row does not make floats
    assert pad([np.ones((1, 2), "float32")]).dtype == np.float32


def test_length_batches_group_similar_lengths_and_cover_every_example_once():
    lengths = [5, 1, 9, 2, 8, 3]
    assert [b.tolist() for b in length_batches(lengths, 2)] == [[1, 3], [5, 0], [4, 2]]
    shuffled = length_batches(lengths, 2, np.random.default_rng(0))
    assert sorted(i for b in shuffled for i in b) == list(range(6))


def test_batches_yield_inputs_targets_and_weights_of_real_positions():
    cols = _columns()
    b = LengthBatches(cols, ["ids", "chars", "vec"], "y", batch_size=8, shuffle=False, step=8, weights=True)
    seen = []
    for k in range(len(b)):
        x, y, w = b[k]
        index = b.batches[k]
        seen.extend(index)
        assert set(x) == {"ids", "chars", "vec"} and x["vec"].dtype == np.float32 and x["ids"].dtype == np.int32
        assert x["ids"].shape[1] % 8 == 0 and x["ids"].shape == y.shape == w.shape
        for row, i in enumerate(index):
            n = len(cols["ids"][i])
            assert x["ids"][row, :n].tolist() == cols["ids"][i] and w[row].sum() == n
            assert np.array_equal(x["chars"][row, :n, : cols["chars"][i].shape[1]], cols["chars"][i])
    assert sorted(seen) == list(range(50))


def test_tuple_inputs_and_inputs_alone():
    cols = _columns()
    (a, c), y = LengthBatches(cols, ["ids", "y"], "y", batch_size=4, shuffle=False, step=8, dict_inputs=False)[0]
    assert a.shape == c.shape == y.shape
    alone = LengthBatches(cols, ["ids"], None, batch_size=4, shuffle=False, step=8, dict_inputs=False)[0]
    assert isinstance(alone, np.ndarray) and alone.shape[0] == 4


def test_an_example_target_is_stacked_and_the_inputs_set_the_lengths():
    ids = [[1] * n for n in (9, 2, 7, 3)]
    labels = [np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 0.0])]
    b = LengthBatches({"ids": ids, "y": labels}, ["ids"], "y", batch_size=2, shuffle=False, step=8,
                      dict_inputs=False, example_target=True)
    (x0, y0), (x1, y1) = b[0], b[1]
    assert b.batches[0].tolist() == [1, 3] and x0.shape == (2, 8) and x1.shape == (2, 16)
    np.testing.assert_array_equal(y0, [labels[1], labels[3]])
    assert y1.shape == (2, 2)
    with pytest.raises(ValueError, match="example_target has none"):
        LengthBatches({"ids": ids, "y": labels}, ["ids"], "y", example_target=True, weights=True)


def test_shuffled_batches_repeat_with_the_seed_and_change_each_pass():
    cols = _columns()

    def order(seed):
        b = LengthBatches(cols, ["ids"], "y", batch_size=8, seed=seed, step=8)
        first = [i.tolist() for i in b.batches]
        b.on_epoch_end()
        return first, [i.tolist() for i in b.batches]

    assert order(3) == order(3)
    first, second = order(3)
    assert first != second and sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(50))


def test_for_fit_on_tensorflow_keeps_time_variable_and_reshuffles_every_pass():
    import keras

    cols = _columns()
    if keras.backend.backend() != "tensorflow":  # Keras takes the PyDataset itself there
        batches = LengthBatches(cols, ["ids"], "y", batch_size=8, seed=1, step=8)
        assert batches.for_fit() is batches
        return
    ds = LengthBatches(cols, ["ids", "chars", "vec"], "y", batch_size=8, seed=1, step=8, weights=True).for_fit()
    x_spec, y_spec, w_spec = ds.element_spec
    assert x_spec["ids"].shape.as_list() == [None, None] and x_spec["chars"].shape.as_list() == [None, None, None]
    assert x_spec["vec"].shape.as_list() == [None, None, 3] and y_spec.shape.as_list() == w_spec.shape.as_list() == [None, None]
    ref = LengthBatches(cols, ["ids", "chars", "vec"], "y", batch_size=8, seed=1, step=8, weights=True)
    passes = []
    for _ in range(2):
        got = [y for _, y, _ in ds.as_numpy_iterator()]
        assert all(np.array_equal(g, ref[k][1]) for k, g in enumerate(got))
        passes.append(got)
        ref.on_epoch_end()
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(*passes))


def test_an_empty_set_and_a_bad_batch_size_are_refused_clearly():
    empty = LengthBatches({"ids": [], "y": []}, ["ids"], "y", batch_size=4, step=8)
    assert len(empty) == 0
    with pytest.raises(ValueError, match="no examples to batch"):
        empty.for_fit()
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        LengthBatches({"ids": [[1]], "y": [[1]]}, ["ids"], "y", batch_size=0, step=8)
