"""Vectorizer stages: turn id sequences into the model's input vectors.

Both vectorizers pad and truncate id lists into a fixed ``(texts, max_length)`` integer array
(``transform``) and give the model its first layer (``input_layer``), which maps ids to vectors
inside the graph:

- ``onehot``: each token a one-hot vector over the vocabulary, so a text is one 2-D matrix
  ``(max_length, vocabulary size)``; ``to_matrix`` returns those matrices in numpy.
- ``embedding``: a dense, trainable vector per token, optionally initialised from pretrained
  word2vec / GloVe / fastText vectors.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import ConfigError, DataError
from .registry import register

from .base import MAX_DIM, MAX_LENGTH, Stage, check_bool, check_choice, check_int, check_str


class Vectorizer(Stage):
    """Shared padding and truncation of id sequences."""

    def _validate_common(self):
        check_int("max_length", self.max_length, minimum=1, maximum=MAX_LENGTH, allow_none=True)
        check_choice("truncation", self.truncation, ("post", "pre"))
        check_choice("padding", self.padding, ("post", "pre"))
        check_bool("mask", self.mask)

    def transform(self, batch) -> np.ndarray:
        """Pad / truncate id lists into an int32 array of shape ``(len(batch), length)``.

        ``length`` is ``max_length``, or the longest sequence in the batch when it is null.
        Id 0 is padding. Texts longer than ``max_length`` lose their tail (``truncation: post``)
        or their head (``pre``); ``last_truncated_`` counts them.
        """
        length = self.max_length
        if length is None:
            length = max((len(s) for s in batch), default=1) or 1
        out = np.zeros((len(batch), length), dtype=np.int32)
        truncated = 0
        for i, ids in enumerate(batch):
            n = len(ids)
            if n > length:
                truncated += 1
                ids = ids[:length] if self.truncation == "post" else ids[n - length:]
                n = length
            if n:
                if self.padding == "post":
                    out[i, :n] = ids
                else:
                    out[i, length - n:] = ids
        self.last_truncated_ = truncated
        return out


@register("vectorizer", "onehot")
class OneHotVectorizer(Vectorizer):
    """One-hot vectors over the vocabulary.

    Args:
        max_length: tokens kept per text (null: the longest text of each batch).
        truncation: ``post`` drops the end of long texts, ``pre`` the start.
        padding: ``post`` pads at the end (needed by the fast cuDNN kernels), ``pre`` at the start.
        mask: mask padding steps so recurrent layers skip them.

    Example:
        >>> v = OneHotVectorizer(max_length=3)
        >>> v.transform([[2, 3]]).tolist()
        [[2, 3, 0]]
        >>> v.to_matrix([[2, 3]], depth=4)[0].tolist()
        [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    """

    def __init__(self, max_length: int | None = 100, truncation: str = "post", padding: str = "post", mask: bool = True):
        super().__init__()

    def _validate(self):
        self._validate_common()

    def fit(self, data=None, vocabulary=None):
        return self

    def to_matrix(self, batch, depth: int) -> np.ndarray:
        """One 2-D one-hot matrix per text: ``(texts, length, depth)``, padding rows all zero."""
        ids = self.transform(batch)
        out = np.zeros((*ids.shape, depth), dtype=np.float32)
        rows, cols = np.nonzero(ids)
        out[rows, cols, ids[rows, cols]] = 1.0
        return out

    def input_layer(self, vocab_size: int):
        from .layers import OneHot

        return OneHot(depth=vocab_size, mask_zero=self.mask, name="onehot")

    def output_dim(self, vocab_size: int) -> int:
        return vocab_size


@register("vectorizer", "embedding")
class EmbeddingVectorizer(Vectorizer):
    """Dense token vectors, learned or initialised from pretrained vectors.

    Args:
        dim: vector size (null: take it from the pretrained file).
        max_length: tokens kept per text (null: the longest text of each batch).
        truncation: ``post`` drops the end of long texts, ``pre`` the start.
        padding: ``post`` pads at the end, ``pre`` at the start.
        mask: mask padding steps so recurrent layers skip them.
        pretrained: path of a vectors file; rows of tokens found there start from those vectors,
            the rest from small random values.
        pretrained_format: ``auto`` (from the file: a binary word2vec file, a text file with a
            ``count dim`` header as word2vec / fastText ``.vec`` write, or GloVe text without one),
            ``word2vec``, ``word2vec_binary``, ``fasttext`` or ``glove``.
        trainable: whether training updates the vectors (set false to freeze pretrained ones).

    Example:
        >>> EmbeddingVectorizer(dim=8, max_length=4).transform([[5, 6, 7, 8, 9]]).tolist()
        [[5, 6, 7, 8]]
    """

    FORMATS = ("auto", "word2vec", "word2vec_binary", "fasttext", "glove")

    def __init__(
        self,
        dim: int | None = 128,
        max_length: int | None = 100,
        truncation: str = "post",
        padding: str = "post",
        mask: bool = True,
        pretrained: str | None = None,
        pretrained_format: str = "auto",
        trainable: bool = True,
    ):
        super().__init__()
        self.weights_ = None
        self._pretrained_rows = None
        self.pretrained_coverage_ = None

    def _validate(self):
        self._validate_common()
        check_int("dim", self.dim, minimum=1, maximum=MAX_DIM, allow_none=self.pretrained is not None)
        check_str("pretrained", self.pretrained, allow_none=True)
        check_choice("pretrained_format", self.pretrained_format, self.FORMATS)
        check_bool("trainable", self.trainable)

    def fit(self, data=None, vocabulary=None):
        """With ``pretrained``, build the initial matrix for ``vocabulary`` and a coverage report."""
        if self.pretrained is None:
            return self
        if vocabulary is None:
            raise ValueError("EmbeddingVectorizer.fit needs the fitted vocabulary to use pretrained vectors")
        if not os.path.isfile(self.pretrained):
            raise ConfigError("pretrained", "must be the path of an existing vectors file", self.pretrained)
        wanted = set(vocabulary.tokens_[2:])
        wanted_lower = {t.lower(): t for t in wanted}
        vectors, dim = read_vectors(self.pretrained, self.pretrained_format, wanted | set(wanted_lower))
        if self.dim is not None and dim != self.dim:
            raise ConfigError(
                "dim", f"must match the {dim}-dimensional vectors in {self.pretrained} (or be null)", self.dim
            )
        rows = {}
        exact = lowered = 0
        missing = []
        for i, tok in enumerate(vocabulary.tokens_[2:], start=2):
            if tok in vectors:
                rows[i] = vectors[tok]
                exact += 1
            elif tok.lower() in vectors:
                rows[i] = vectors[tok.lower()]
                lowered += 1
            else:
                missing.append(tok)
        matrix = initial_matrix(len(vocabulary.tokens_), dim, rows)
        n = max(len(vocabulary.tokens_) - 2, 1)
        self.weights_ = matrix
        self._pretrained_rows = rows  # for draws with other seeds (initial_weights)
        self.pretrained_coverage_ = {
            "vocabulary_types": len(vocabulary.tokens_) - 2,
            "found_exact": exact,
            "found_lowercased": lowered,
            "coverage": (exact + lowered) / n,
            "missing_examples": missing[:20],
            "dim": dim,
        }
        return self

    def embedding_dim(self) -> int:
        return self.dim if self.dim is not None else self.weights_.shape[1]

    def input_layer(self, vocab_size: int):
        import keras

        return keras.layers.Embedding(
            vocab_size, self.embedding_dim(), mask_zero=self.mask, trainable=self.trainable, name="embedding"
        )

    def initial_weights(self, seed: int | None = None):
        """The pretrained matrix to load into the embedding layer, or None.

        Rows without a pretrained vector are random: drawn with ``seed`` (the training seed, so
        that every ensemble member gets its own draw, as it does without pretrained vectors),
        or the draw made in ``fit`` when None.
        """
        if self.weights_ is None or seed is None:
            return self.weights_
        return initial_matrix(len(self.weights_), self.weights_.shape[1], self._pretrained_rows, seed=seed)

    def output_dim(self, vocab_size: int) -> int:
        return self.embedding_dim()


def initial_matrix(n_rows: int, dim: int, rows: dict, seed: int = 0) -> np.ndarray:
    """An embedding matrix that starts from pretrained vectors where there are some.

    Row ``i`` is ``rows[i]`` where given; the other rows are drawn from a normal distribution
    with the pretrained vectors' standard deviation (0.1 without any), and row 0 (padding) is 0.
    """
    found = np.array(list(rows.values())) if rows else np.zeros((1, dim))
    scale = float(found.std()) or 0.1
    matrix = np.random.default_rng(seed).normal(0.0, scale, size=(n_rows, dim)).astype(np.float32)
    matrix[0] = 0.0
    for i, vector in rows.items():
        matrix[i] = vector
    return matrix


def read_vectors(path: str, fmt: str = "auto", wanted: set | None = None) -> tuple[dict, int]:
    """Read word vectors, keeping only the ``wanted`` words (all when None).

    Returns:
        ``(vectors, dim)``: a dict word -> float32 array, and the dimension.
    """
    if fmt == "auto":
        fmt = _sniff_format(path)
    if fmt == "word2vec_binary":
        return _read_word2vec_binary(path, wanted)
    has_header = fmt in ("word2vec", "fasttext")
    vectors = {}
    dim = None
    with open(path, encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and has_header:
                if len(parts) != 2:
                    raise DataError(f"{path}:1: expected a 'count dim' header line for {fmt} vectors")
                dim = int(parts[1])
                continue
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            if len(values) != dim:
                raise DataError(f"{path}:{lineno}: expected {dim} values for {word!r}, found {len(values)}")
            if wanted is None or word in wanted:
                try:
                    vectors[word] = np.asarray(values, dtype=np.float32)
                except ValueError:
                    raise DataError(f"{path}:{lineno}: a value for {word!r} is not a number") from None
    if dim is None:
        raise DataError(f"{path}: no vectors found")
    return vectors, dim


def _sniff_format(path: str) -> str:
    with open(path, "rb") as f:
        head = f.readline()
        body = f.read(4096)
    parts = head.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        try:
            body.decode("utf-8")
            return "word2vec"
        except UnicodeDecodeError:
            return "word2vec_binary"
    return "glove"


def _read_word2vec_binary(path, wanted):
    vectors = {}
    with open(path, "rb") as f:
        header = f.readline().split()
        if len(header) != 2:
            raise DataError(f"{path}:1: expected a 'count dim' header line for binary word2vec vectors")
        count, dim = int(header[0]), int(header[1])
        width = 4 * dim
        for k in range(count):
            word = bytearray()
            while True:
                ch = f.read(1)
                if not ch:
                    raise DataError(f"{path}: file ends inside vector {k + 1} of {count}")
                if ch == b" ":
                    break
                if ch != b"\n":
                    word += ch
            data = f.read(width)
            if len(data) != width:
                raise DataError(f"{path}: file ends inside vector {k + 1} of {count}")
            token = word.decode("utf-8", errors="replace")
            if wanted is None or token in wanted:
                vectors[token] = np.frombuffer(data, dtype="<f4").copy()
    return vectors, dim
