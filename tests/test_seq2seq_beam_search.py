"""Batched greedy / beam search (stages.beam_search) against a plain per-sentence reference."""

import numpy as np
import pytest
from keras import ops

from stages.beam_search import (
    BLOCK,
    NEG,
    _candidates,
    _top_k_rows,
    beam_search,
    check_search_options,
    greedy_search,
    length_penalty,
)
from pipeline.errors import ConfigError

V, H, BOS, EOS = 7, 5, 1, 2


def _toy(seed=0, vocab=V):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(H, H)) * 0.8, rng.normal(size=(vocab, H)), rng.normal(size=(H, vocab)) * 2.0


def _np_step(weights, token, h, bias):
    w, e, u = weights
    h = np.tanh(h @ w + e[token])
    logits = h @ u + bias
    logits = logits - logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True)), h


def _keras_step(weights):
    w, e, u = (ops.convert_to_tensor(x.astype("float32")) for x in weights)

    def step(tokens, state, context):
        h = ops.tanh(ops.matmul(state[0], w) + ops.take(e, tokens, axis=0))
        logits = ops.matmul(h, u) + context[0]
        attn = ops.softmax(context[0][:, :3])  # any per-row vector, to test attention plumbing
        return ops.log_softmax(logits, axis=-1), [h], attn

    return step


def _reference_beam(weights, h0, bias, k, max_length, alpha, banned=()):
    """One sentence, lists and loops, same rules: 2k candidates, <eos> finishes, max_length forces."""
    alive = [([], 0.0, h0)]
    vocab = len(bias)
    finished = []
    for i in range(max_length):
        cands = []
        for seq, lp, h in alive:
            logp, h2 = _np_step(weights, seq[-1] if seq else BOS, h, bias)
            cands += [(lp + logp[v], seq + [v], h2) for v in range(vocab) if v not in banned]
        cands.sort(key=lambda c: -c[0])
        top = cands[: 2 * k]
        pen = ((5.0 + i + 1) / 6.0) ** alpha
        for lp, seq, _ in top:
            if seq[-1] == EOS or i == max_length - 1:
                finished.append((lp / pen, seq))
        finished = sorted(finished, key=lambda f: -f[0])[:k]
        alive = [(seq, lp, h) for lp, seq, h in top if seq[-1] != EOS][:k]
    return finished


def _setup(batch=4, seed=0, vocab=V):
    rng = np.random.default_rng(seed + 100)
    weights = _toy(seed, vocab)
    h0 = rng.normal(size=(batch, H)).astype("float32")
    bias = rng.normal(size=(batch, vocab)).astype("float32")
    bias[:, EOS] += 1.0  # make <eos> reachable so hypotheses finish at different lengths
    return weights, h0, bias


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_search_matches_reference(alpha):
    weights, h0, bias = _setup()
    k, max_length = 3, 6
    tokens, scores, _ = beam_search(_keras_step(weights), [h0], [bias], 4, BOS, EOS, max_length, k, alpha)
    tokens, scores = ops.convert_to_numpy(tokens), ops.convert_to_numpy(scores)
    for b in range(4):
        ref = _reference_beam(weights, h0[b].astype(np.float64), bias[b].astype(np.float64), k, max_length, alpha)
        for j, (ref_score, ref_seq) in enumerate(ref):
            assert tokens[b, j, : len(ref_seq)].tolist() == ref_seq
            assert (tokens[b, j, len(ref_seq):] == 0).all()
            assert scores[b, j] == pytest.approx(ref_score, rel=1e-4, abs=1e-4)


def test_beam_search_batched_equals_one_sentence_at_a_time():
    weights, h0, bias = _setup(batch=5, seed=3)
    step = _keras_step(weights)
    tokens, scores, attn = beam_search(step, [h0], [bias], 5, BOS, EOS, 8, 4, 0.6, source_length=3)
    for b in range(5):
        t1, s1, a1 = beam_search(step, [h0[b:b + 1]], [bias[b:b + 1]], 1, BOS, EOS, 8, 4, 0.6, source_length=3)
        np.testing.assert_array_equal(ops.convert_to_numpy(t1)[0], ops.convert_to_numpy(tokens)[b])
        np.testing.assert_allclose(ops.convert_to_numpy(s1)[0], ops.convert_to_numpy(scores)[b], rtol=1e-5)
        np.testing.assert_allclose(ops.convert_to_numpy(a1)[0], ops.convert_to_numpy(attn)[b], rtol=1e-5)


def test_greedy_search_picks_argmax_each_step():
    weights, h0, bias = _setup(batch=3, seed=5)
    tokens, scores, attn = greedy_search(_keras_step(weights), [h0], [bias], 3, BOS, EOS, 7, source_length=3)
    tokens, scores = ops.convert_to_numpy(tokens), ops.convert_to_numpy(scores)
    for b in range(3):
        h, tok, total, seq = h0[b].astype(np.float64), BOS, 0.0, []
        for _ in range(7):
            logp, h = _np_step(weights, tok, h, bias[b].astype(np.float64))
            tok = int(np.argmax(logp))
            total += logp[tok]
            seq.append(tok)
            if tok == EOS:
                break
        assert tokens[b, : len(seq)].tolist() == seq
        assert scores[b] == pytest.approx(total, rel=1e-4, abs=1e-4)
    assert ops.convert_to_numpy(attn).shape == (3, 7, 3)


def test_search_always_stops_at_max_length():
    weights, h0, bias = _setup(batch=2, seed=1)
    bias[:, EOS] = -50.0  # <eos> never wins: only max_length can stop the search
    tokens, scores, _ = beam_search(_keras_step(weights), [h0], [bias], 2, BOS, EOS, 5, 3, 0.0, banned_ids=(0, BOS))
    tokens = ops.convert_to_numpy(tokens)
    assert tokens.shape == (2, 3, 5)
    assert (tokens != EOS).all() and (tokens != 0).all() and (tokens != BOS).all()
    assert (ops.convert_to_numpy(scores) > NEG / 2).all()
    g, _, _ = greedy_search(_keras_step(weights), [h0], [bias], 2, BOS, EOS, 5)
    assert ops.convert_to_numpy(g).shape == (2, 5)


def test_length_penalty_is_gnmt_formula():
    assert float(length_penalty(7, 0.6)) == pytest.approx((12 / 6) ** 0.6)
    assert float(length_penalty(7, 0.0)) == 1.0


@pytest.mark.parametrize(
    "beam, vocab, match",
    [(0, 10, "beam_width must be an integer >= 1"), (11, 10, "must not exceed the target vocabulary size"), (2.5, 10, "beam_width")],
)
def test_check_search_options_refuses_bad_beam_width(beam, vocab, match):
    with pytest.raises(ConfigError, match=match):
        check_search_options(beam, 20, 0.0, vocab)


def test_check_search_options_refuses_negative_length_penalty():
    with pytest.raises(ConfigError, match="length_penalty must be a number >= 0"):
        check_search_options(2, 20, -1.0, 10)


def test_beam_search_n_best_1_keeps_the_exact_best_hypothesis():
    weights, h0, bias = _setup(batch=4, seed=7)
    tokens, scores, _ = beam_search(_keras_step(weights), [h0], [bias], 4, BOS, EOS, 7, 3, 0.6, n_best=1)
    tokens, scores = ops.convert_to_numpy(tokens), ops.convert_to_numpy(scores)
    for b in range(4):
        ref_score, ref_seq = _reference_beam(weights, h0[b].astype(np.float64), bias[b].astype(np.float64), 3, 7, 0.6)[0]
        assert tokens[b, 0, : len(ref_seq)].tolist() == ref_seq
        assert scores[b, 0] == pytest.approx(ref_score, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_search_large_vocabulary_matches_reference(alpha):
    # 300 tokens > 2k + banned: candidates come from each beam's best tokens, found by blocks.
    weights, h0, bias = _setup(batch=3, seed=11, vocab=300)
    k, max_length = 3, 7
    step = _keras_step(weights)
    tokens, scores, _ = beam_search(step, [h0], [bias], 3, BOS, EOS, max_length, k, alpha, banned_ids=(0, BOS))
    tokens, scores = ops.convert_to_numpy(tokens), ops.convert_to_numpy(scores)
    for b in range(3):
        ref = _reference_beam(weights, h0[b].astype(np.float64), bias[b].astype(np.float64), k, max_length, alpha, (0, BOS))
        for j, (ref_score, ref_seq) in enumerate(ref):
            assert tokens[b, j, : len(ref_seq)].tolist() == ref_seq
            assert scores[b, j] == pytest.approx(ref_score, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("vocab", [8, 40, 300])
def test_beam_candidates_equal_full_ranking_with_ties(vocab):
    # Per-beam pre-selection by blocks (vocab 300 > BLOCK * (2k + banned)) and the full ranking
    # (8, 40) must both give exactly what a stable sort of all k * vocab banned-out sums gives,
    # ties included.
    rng = np.random.default_rng(vocab)
    b, k, banned = 3, 3, (0, 1)
    log_probs = np.round(rng.normal(-3.0, 1.0, size=(b * k, vocab)), 1).astype("float32")
    alive = np.round(rng.normal(-2.0, 0.5, size=(b, k)), 1).astype("float32")
    alive[0, 1] = alive[0, 0]  # equal beams: ties across beams too
    found = _candidates(ops.convert_to_tensor(log_probs), ops.convert_to_tensor(alive), b, k, banned)
    top_logp, origin, token = (ops.convert_to_numpy(t) for t in found)
    banned_lp = log_probs.copy()
    banned_lp[:, list(banned)] = NEG
    cand = (alive[:, :, None] + banned_lp.reshape(b, k, vocab)).reshape(b, -1)
    order = np.argsort(-cand, axis=1, kind="stable")[:, : 2 * k]
    np.testing.assert_array_equal(top_logp, np.take_along_axis(cand, order, axis=1))
    np.testing.assert_array_equal(origin, order // vocab)
    np.testing.assert_array_equal(token, order % vocab)


@pytest.mark.parametrize("width", [5 * BLOCK, 13 * BLOCK + 7, 3 * BLOCK + 1])
def test_top_k_rows_equals_top_k_with_ties(width):
    # Whole-number scores tie a lot, also across blocks; the last width is narrow enough to
    # take plain top_k (4 blocks <= m).
    rng = np.random.default_rng(width)
    x = np.round(rng.normal(size=(6, width)) * 2).astype("float32")
    x[0, :] = 1.0  # a row of one value: the m lowest indices
    values, ids = (ops.convert_to_numpy(t) for t in _top_k_rows(ops.convert_to_tensor(x), 4))
    order = np.argsort(-x, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_array_equal(values, np.take_along_axis(x, order, axis=1))
