import numpy as np

import pytest

from stages.layers import AttentionPooling, MaskedPooling, NgramBag, OneHot, TokenDropout, hash_pair


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


def _attention(units=1):
    layer = AttentionPooling(units=units)
    layer.build((None, None, 1))
    # score of a step = tanh(h): steps with larger values get more weight
    layer.set_weights([np.ones((1, units), "float32"), np.zeros(units, "float32"), np.ones((units, 1), "float32")])
    return layer


def test_attention_pooling_is_the_softmax_weighted_mean_of_the_steps():
    x = np.array([[[0.0], [2.0]]], dtype="float32")
    weights = np.exp([np.tanh(0.0), np.tanh(2.0)])
    weights /= weights.sum()
    out = float(np.asarray(_attention()(x))[0, 0])
    np.testing.assert_allclose(out, weights @ [0.0, 2.0], rtol=1e-5)


def test_attention_pooling_gives_padding_no_weight():
    layer = _attention(units=3)
    x = np.array([[[0.0], [2.0], [50.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    weights = np.asarray(layer.weights_of(x, mask))
    assert weights[0, 2] == 0.0 and np.isclose(weights.sum(), 1.0)
    np.testing.assert_allclose(np.asarray(layer(x, mask=mask)), np.asarray(layer(x[:, :2])), rtol=1e-5)


def test_attention_pooling_of_an_all_padding_row_is_zero():
    x = np.array([[[4.0], [5.0]]], dtype="float32")
    assert float(np.asarray(_attention()(x, mask=np.array([[False, False]])))[0, 0]) == 0.0


def _bag_with_known_scores(max_n, buckets=97, scale=1.0, norm="sum"):
    bag = NgramBag(vocab_size=6, units=2, max_n=max_n, buckets=buckets, scale=scale, norm=norm)
    bag.build((None, None))
    rng = np.random.default_rng(0)
    unigram = rng.normal(size=(6, 2)).astype("float32")
    weights = [unigram]
    if max_n > 1:
        weights.append(rng.normal(size=(buckets, 2)).astype("float32"))
    bag.set_weights(weights)
    return bag, weights


def _expected_bag(ids, max_n, weights, buckets):
    """Sum of the score rows of every n-gram (n = 1..max_n) made of real tokens only."""
    total = np.zeros(2, dtype="float64")
    tokens = [int(i) for i in ids]
    for n in range(1, max_n + 1):
        for start in range(len(tokens) - n + 1):
            gram = tokens[start : start + n]
            if 0 in gram:
                continue
            if n == 1:
                total += weights[0][gram[0]]
                continue
            h = gram[0]
            for k, token in enumerate(gram[1:], start=2):
                h = int(hash_pair(np.int32(h), np.int32(token), k, buckets))
            total += weights[1][h]
    return total


def test_ngram_bag_sums_the_scores_of_real_unigrams_bigrams_and_trigrams():
    ids = np.array([[2, 3, 4, 0, 0], [0, 0, 5, 1, 2], [3, 0, 3, 3, 0]], dtype="int32")
    for max_n in (1, 2, 3):
        bag, weights = _bag_with_known_scores(max_n)
        out = np.asarray(bag(ids))
        for row, expected in zip(ids, out):
            np.testing.assert_allclose(expected, _expected_bag(row, max_n, weights, 97), rtol=1e-5, atol=1e-6)


def test_ngram_bag_scale_multiplies_and_padding_adds_nothing():
    bag, _ = _bag_with_known_scores(2, scale=3.0)
    plain, _ = _bag_with_known_scores(2)
    a = np.asarray(bag(np.array([[2, 3, 4]])))
    np.testing.assert_allclose(a, 3.0 * np.asarray(plain(np.array([[2, 3, 4]]))), rtol=1e-5)
    np.testing.assert_allclose(a, np.asarray(bag(np.array([[2, 3, 4, 0, 0, 0]]))), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bag(np.array([[0, 0]]))), 0.0)


@pytest.mark.parametrize("norm, divide", [("mean", lambda n: n), ("sqrt", np.sqrt)])
def test_ngram_bag_norm_divides_the_sum_by_the_token_count_or_its_root(norm, divide):
    ids = np.array([[2, 3, 4, 0, 0], [0, 0, 5, 1, 2], [3, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype="int32")
    normed, weights = _bag_with_known_scores(2, norm=norm, scale=2.0)
    out = np.asarray(normed(ids))
    for row, got in zip(ids, out):
        n = max(int(np.count_nonzero(row)), 1)
        np.testing.assert_allclose(got, 2.0 * _expected_bag(row, 2, weights, 97) / divide(n), rtol=1e-5, atol=1e-6)
    assert np.all(out[3] == 0.0)  # an empty text
    assert NgramBag.from_config(normed.get_config()).norm == norm
    with pytest.raises(ValueError, match="norm must be one of sum, mean, sqrt"):
        NgramBag(vocab_size=6, units=2, norm="l2")


def test_ngram_bag_of_an_older_saved_config_sums():
    config = NgramBag(vocab_size=6, units=2).get_config()
    del config["norm"]  # saved before the option existed
    assert NgramBag.from_config(config).norm == "sum"


def test_hash_pair_stays_in_range_without_int32_overflow():
    big = np.array([2**31 - 1, 65520, 0, 123456789], dtype="int32")
    h = np.asarray(hash_pair(big, big[::-1], 3, 1 << 24))
    assert h.dtype == np.int32 and h.min() >= 1 and h.max() < 1 << 24
    # the same value as exact Python integers
    expected = [((a % 65521) * 7919 + (b % 65521) * 31 + 3) % ((1 << 24) - 1) + 1 for a, b in zip(big.tolist(), big[::-1].tolist())]
    assert h.tolist() == expected


def test_token_dropout_replaces_words_by_unk_only_in_training():
    ids = np.tile(np.array([[5, 6, 1, 7, 0, 0]]), (2000, 1))
    layer = TokenDropout(0.25, seed=3)
    assert np.asarray(layer(ids)).tolist() == ids.tolist()  # prediction: unchanged
    out = np.asarray(layer(ids, training=True))
    words = out[:, [0, 1, 3]]
    assert set(np.unique(words)) <= {1, 5, 6, 7}
    assert 0.22 < (words == 1).mean() < 0.28  # about the rate
    assert (out[:, 2] == 1).all() and (out[:, 4:] == 0).all()  # <unk> stays, padding stays padding
    assert (np.asarray(TokenDropout(1.0)(ids[:1], training=True)) == [[1, 1, 1, 1, 0, 0]]).all()
    with pytest.raises(ValueError, match="rate"):
        TokenDropout(1.5)
