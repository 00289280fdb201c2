import struct

import numpy as np
import pytest

from pipeline import ConfigError, DataError
from stages.vectorizers import EmbeddingVectorizer, OneHotVectorizer, read_vectors
from stages.vocabulary import Vocabulary


def test_vectorizer_pads_at_the_end_by_default():
    assert OneHotVectorizer(max_length=4).transform([[5, 6]]).tolist() == [[5, 6, 0, 0]]


def test_vectorizer_pre_padding():
    assert OneHotVectorizer(max_length=4, padding="pre").transform([[5, 6]]).tolist() == [[0, 0, 5, 6]]


def test_vectorizer_truncates_the_tail_and_counts_it():
    v = OneHotVectorizer(max_length=2)
    assert v.transform([[1, 2, 3], [4]]).tolist() == [[1, 2], [4, 0]]
    assert v.last_truncated_ == 1


def test_vectorizer_pre_truncation_keeps_the_tail():
    assert OneHotVectorizer(max_length=2, truncation="pre").transform([[1, 2, 3]]).tolist() == [[2, 3]]


def test_vectorizer_without_max_length_pads_to_the_longest():
    assert OneHotVectorizer(max_length=None).transform([[1], [1, 2, 3]]).shape == (2, 3)


def test_vectorizer_empty_text_gives_a_padding_row():
    assert OneHotVectorizer(max_length=None).transform([[]]).tolist() == [[0]]


def test_onehot_matrix_is_one_2d_matrix_per_text():
    m = OneHotVectorizer(max_length=3).to_matrix([[2, 3], [1]], depth=4)
    assert m.shape == (2, 3, 4)
    assert m[0, 0, 2] == 1 and m[0, 1, 3] == 1 and m[0, 2].sum() == 0
    assert m.sum() == 3


def test_onehot_layer_matches_the_numpy_matrix():
    v = OneHotVectorizer(max_length=3)
    ids = v.transform([[2, 3]])
    layer_out = np.asarray(v.input_layer(4)(ids))
    np.testing.assert_array_equal(layer_out, v.to_matrix([[2, 3]], depth=4))


def _vocab():
    return Vocabulary().fit([["cat", "dog", "Fish", "bird"]])


def _write_text_vectors(path, header=True):
    rows = {"cat": [1.0, 0.0, 0.5], "dog": [0.0, 1.0, 0.5], "fish": [0.5, 0.5, 0.0], "zebra": [9.0, 9.0, 9.0]}
    lines = [f"{len(rows)} 3"] if header else []
    lines += [w + " " + " ".join(map(str, v)) for w, v in rows.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


@pytest.mark.parametrize("fmt,header", [("word2vec", True), ("fasttext", True), ("glove", False), ("auto", True), ("auto", False)])
def test_embedding_loads_text_vectors(tmp_path, fmt, header):
    path = tmp_path / "vectors.txt"
    rows = _write_text_vectors(path, header)
    vocab = _vocab()
    v = EmbeddingVectorizer(dim=3, pretrained=str(path), pretrained_format=fmt).fit(vocabulary=vocab)
    np.testing.assert_allclose(v.weights_[vocab.id_of("cat")], rows["cat"])
    np.testing.assert_allclose(v.weights_[vocab.id_of("Fish")], rows["fish"])  # lower-cased fallback
    assert v.weights_[0].tolist() == [0.0, 0.0, 0.0]
    cov = v.pretrained_coverage_
    assert (cov["found_exact"], cov["found_lowercased"], cov["missing_examples"]) == (2, 1, ["bird"])


def test_embedding_loads_binary_word2vec(tmp_path):
    path = tmp_path / "vectors.bin"
    with open(path, "wb") as f:
        f.write(b"2 3\n")
        for word, vec in (("cat", [1.0, 2.0, 3.0]), ("dog", [4.0, 5.0, 6.0])):
            f.write(word.encode() + b" " + struct.pack("<3f", *vec) + b"\n")
    vectors, dim = read_vectors(str(path))
    assert dim == 3
    np.testing.assert_allclose(vectors["dog"], [4.0, 5.0, 6.0])


def test_embedding_pretrained_weights_reach_the_model_layer(tmp_path):
    path = tmp_path / "vectors.txt"
    rows = _write_text_vectors(path)
    vocab = _vocab()
    v = EmbeddingVectorizer(dim=None, pretrained=str(path), trainable=False).fit(vocabulary=vocab)
    layer = v.input_layer(len(vocab))
    layer.build((None, None))
    layer.set_weights([v.initial_weights()])
    out = np.asarray(layer(np.array([[vocab.id_of("cat")]])))
    np.testing.assert_allclose(out[0, 0], rows["cat"])
    assert layer.trainable is False


def test_embedding_random_rows_are_drawn_with_the_training_seed(tmp_path):
    path = tmp_path / "vectors.txt"
    _write_text_vectors(path)
    vocab = _vocab()
    v = EmbeddingVectorizer(dim=3, pretrained=str(path)).fit(vocabulary=vocab)
    a, b = v.initial_weights(seed=1), v.initial_weights(seed=2)
    found = [vocab.id_of(w) for w in ("cat", "dog", "Fish")]
    np.testing.assert_array_equal(a[found], b[found])  # pretrained rows: the vectors, whatever the seed
    np.testing.assert_array_equal(a[0], np.zeros(3))
    unk, bird = vocab.id_of("<unk>"), vocab.id_of("bird")
    assert not np.allclose(a[[unk, bird]], b[[unk, bird]])  # random rows: one draw per seed
    np.testing.assert_array_equal(a, v.initial_weights(seed=1))
    np.testing.assert_array_equal(v.initial_weights(), v.weights_)


def test_embedding_dim_must_match_the_vectors(tmp_path):
    path = tmp_path / "vectors.txt"
    _write_text_vectors(path)
    with pytest.raises(ConfigError, match="dim must match the 3-dimensional vectors"):
        EmbeddingVectorizer(dim=5, pretrained=str(path)).fit(vocabulary=_vocab())


def test_embedding_missing_vectors_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="pretrained must be the path of an existing vectors file"):
        EmbeddingVectorizer(pretrained=str(tmp_path / "none.vec")).fit(vocabulary=_vocab())


def test_embedding_ragged_vectors_file_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("cat 1 2 3\ndog 1 2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected 3 values for 'dog', found 2"):
        read_vectors(str(path), "glove")


def test_embedding_needs_dim_without_pretrained():
    with pytest.raises(ConfigError, match="dim must be an integer >= 1"):
        EmbeddingVectorizer(dim=None)


def test_vectorizer_sizes_that_cannot_fit_in_memory_name_the_limit():
    with pytest.raises(ConfigError, match=r"dim must be an integer >= 1 and <= 16384"):
        EmbeddingVectorizer(dim=10**9)
    with pytest.raises(ConfigError, match=r"max_length must be an integer >= 1 and <= 1000000 or null"):
        OneHotVectorizer(max_length=10**9)
