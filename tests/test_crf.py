import itertools
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from stages.crf import CRF, CRFTaggerModel

K, T = 3, 4
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)


def _random_crf(seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    crf = CRF(K, **kwargs)
    potentials = rng.normal(size=(len(MASK), T, K)).astype("float32")
    crf(potentials)
    crf.transitions.assign(rng.normal(size=(K, K)).astype("float32"))
    crf.start_transitions.assign(rng.normal(size=(K,)).astype("float32"))
    crf.end_transitions.assign(rng.normal(size=(K,)).astype("float32"))
    return crf, potentials


def _brute_force(crf, potentials, b):
    """Every path of sentence ``b`` with its score, by enumeration."""
    trans, start, end = (np.asarray(v) for v in crf.effective_transitions())
    length = int(MASK[b].sum())
    paths = list(itertools.product(range(K), repeat=length))
    scores = []
    for path in paths:
        s = start[path[0]] + end[path[-1]] + sum(potentials[b, t, path[t]] for t in range(length))
        s += sum(trans[path[t - 1], path[t]] for t in range(1, length))
        scores.append(s)
    scores = np.array(scores, dtype="float64")
    log_z = np.log(np.exp(scores - scores.max()).sum()) + scores.max()
    return paths, scores, log_z


def test_crf_log_partition_matches_enumeration():
    crf, pot = _random_crf()
    log_z = np.asarray(crf.log_partition(pot, MASK))
    for b in range(len(MASK)):
        assert log_z[b] == pytest.approx(_brute_force(crf, pot, b)[2], abs=1e-4)


def test_crf_log_likelihood_matches_enumeration_with_masking():
    crf, pot = _random_crf(1)
    for b in range(len(MASK)):
        paths, scores, log_z = _brute_force(crf, pot, b)
        i = len(paths) // 2
        gold = np.array(list(paths[i]) + [2] * (T - len(paths[i])))[None]  # padding tags are ignored
        ll = float(np.asarray(crf.log_likelihood(pot[b : b + 1], gold, MASK[b : b + 1]))[0])
        assert ll == pytest.approx(scores[i] - log_z, abs=1e-4)


def test_crf_viterbi_finds_the_best_path_and_zeroes_padding():
    crf, pot = _random_crf(2)
    tags, best = crf.viterbi(pot, MASK)
    tags, best = np.asarray(tags), np.asarray(best)
    for b in range(len(MASK)):
        paths, scores, _ = _brute_force(crf, pot, b)
        length = len(paths[0])
        assert tuple(tags[b, :length]) == paths[int(scores.argmax())]
        assert (tags[b, length:] == 0).all()
        assert best[b] == pytest.approx(scores.max(), abs=1e-4)


def test_crf_marginals_match_enumeration():
    crf, pot = _random_crf(3)
    marginals = np.asarray(crf.marginals(pot, MASK))
    for b in range(len(MASK)):
        paths, scores, log_z = _brute_force(crf, pot, b)
        expected = np.zeros((len(paths[0]), K))
        for path, p in zip(paths, np.exp(scores - log_z)):
            expected[np.arange(len(path)), path] += p
        np.testing.assert_allclose(marginals[b, : len(paths[0])], expected, atol=1e-5)
        assert (marginals[b, len(paths[0]) :] == 0).all()


def test_crf_constraints_forbid_transitions_in_decoding():
    allowed = np.ones((K, K), int)
    allowed[:, 1] = 0  # nothing may move into tag 1 ...
    start = [1, 0, 1]  # ... nor start with it
    crf, pot = _random_crf(4, allowed_transitions=allowed, allowed_start=start)
    pot[:, :, 1] += 50.0  # emissions that would pick tag 1 everywhere
    tags = np.asarray(crf.viterbi(pot, MASK)[0])
    assert not (tags[MASK] == 1).any()


def test_crf_rejects_a_constraint_of_the_wrong_shape():
    with pytest.raises(ValueError, match="allowed_transitions must be a 0/1 array of shape"):
        CRF(3, allowed_transitions=[[1, 0], [0, 1]])


def test_crf_config_round_trips():
    crf = CRF(2, allowed_transitions=[[1, 0], [1, 1]], allowed_end=[1, 0], name="crf")
    again = CRF.from_config(crf.get_config())
    assert again.get_config() == crf.get_config()


# -- a tiny tagger trained on a learnable toy task ------------------------------------------
def _toy_data(n=64, seed=0):
    """Tag 2 follows token 3; tag 1 marks tokens >= 5; otherwise tag 0."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 7), "int32")
    y = np.zeros((n, 7), "int32")
    for i in range(n):
        length = rng.integers(2, 8)
        x[i, :length] = rng.integers(2, 9, size=length)
        for t in range(length):
            y[i, t] = 2 if t > 0 and x[i, t - 1] == 3 else int(x[i, t] >= 5)
    return x, y, (x != 0).astype("float32")


def _toy_model(seed=0):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(10, 8, mask_zero=True)(ids)
    h = keras.layers.Bidirectional(keras.layers.GRU(8, return_sequences=True))(h)
    out = CRF(3, name="crf")(keras.layers.Dense(3)(h))
    model = CRFTaggerModel(ids, out)
    model.compile(optimizer=keras.optimizers.Adam(0.05), metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def test_crf_tagger_model_learns_a_toy_task():
    x, y, w = _toy_data()
    model = _toy_model()
    history = model.fit(x, y, sample_weight=w, epochs=15, batch_size=16, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    tags = np.asarray(model.crf.viterbi(model.predict(x, verbose=0), x != 0)[0])
    assert (tags[x != 0] == y[x != 0]).mean() > 0.9


def _fit_save_load(tmp_path):
    """A toy CRF model fitted 3 epochs, and its copy saved to and loaded from a .keras file."""
    x, y, w = _toy_data()
    model = _toy_model()
    model.fit(x, y, sample_weight=w, epochs=3, batch_size=16, verbose=0, shuffle=False)
    path = str(tmp_path / "m.keras")
    model.save(path)
    return model, keras.saving.load_model(path, safe_mode=True), (x, y, w)


def test_crf_tagger_model_predicts_the_same_after_save_and_load(tmp_path):
    model, loaded, (x, _, _) = _fit_save_load(tmp_path)
    assert isinstance(loaded, CRFTaggerModel)
    before = np.asarray(model.crf.viterbi(model.predict(x, verbose=0), x != 0)[0])
    after = np.asarray(loaded.crf.viterbi(loaded.predict(x, verbose=0), x != 0)[0])
    np.testing.assert_array_equal(before, after)


def test_crf_tagger_model_training_continues_after_save_and_load(tmp_path):
    model, loaded, (x, y, w) = _fit_save_load(tmp_path)
    # Same weights and optimizer state: one more epoch gives the same loss either way,
    # and it goes on from where the first run stopped instead of starting over.
    go_on = model.fit(x, y, sample_weight=w, epochs=1, batch_size=16, verbose=0, shuffle=False).history["loss"][0]
    resumed = loaded.fit(x, y, sample_weight=w, epochs=1, batch_size=16, verbose=0, shuffle=False).history["loss"][0]
    fresh = _toy_model().fit(x, y, sample_weight=w, epochs=1, batch_size=16, verbose=0, shuffle=False).history["loss"][0]
    assert resumed == pytest.approx(go_on, rel=1e-4)
    assert resumed < 0.8 * fresh


JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    assert keras.backend.backend() == "jax"
    import sys; sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from test_crf import _toy_data, _toy_model, _random_crf, _brute_force, MASK
    crf, pot = _random_crf()
    log_z = np.asarray(crf.log_partition(pot, MASK))
    for b in range(len(MASK)):
        assert abs(log_z[b] - _brute_force(crf, pot, b)[2]) < 1e-4
        paths, scores, _ = _brute_force(crf, pot, b)
        assert tuple(np.asarray(crf.viterbi(pot, MASK)[0])[b, : len(paths[0])]) == paths[int(scores.argmax())]
    x, y, w = _toy_data()
    model = _toy_model()
    h = model.fit(x, y, sample_weight=w, epochs=15, batch_size=16, verbose=0, shuffle=False).history["loss"]
    assert h[-1] < 0.3 * h[0], h
    model.save({path!r})
    loaded = keras.saving.load_model({path!r}, safe_mode=True)
    a = np.asarray(model.crf.viterbi(model.predict(x, verbose=0), x != 0)[0])
    b = np.asarray(loaded.crf.viterbi(loaded.predict(x, verbose=0), x != 0)[0])
    assert (a == b).all()
    print("JAX-OK")
    """
)


@pytest.mark.slow  # ~25-35 s on 2 cores: a JAX child process; tests/test_backend.py keeps one JAX run in the default suite
def test_crf_trains_decodes_and_reloads_on_the_jax_backend(tmp_path):
    pytest.importorskip("jax")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = JAX_SCRIPT.format(root=root, tests=os.path.join(root, "tests"), path=str(tmp_path / "m.keras"))
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "JAX-OK" in result.stdout, result.stderr[-3000:]


def test_crf_keeps_xla_off_on_tensorflow():
    # XLA cannot differentiate TensorFlow's scan; jit_compile="auto" must not pick it on a GPU.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow backend only")
    assert CRF(2).supports_jit is False
