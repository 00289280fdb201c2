"""The tagger's ``lexicon`` feature family and its helpers: matching dictionary words in a
sentence, their slot layout, training counts, word lists, part-of-speech classes, the
``LexiconEmbedding`` layer that pools the matched words' vectors (SoftLexicon-style), and the
``Lexicon`` feature itself.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import keras
import numpy as np
from keras import ops

from ..base import check_bool, check_choice, check_int, check_str
from ..crf import PACKAGE
from ..errors import ConfigError
from .assets import read_lines
from .features import TokenFeature, positive_int, feature_vocab, read_pretrained

log = logging.getLogger("ktp")

#: A character's positions in a lexicon word, per word length: the columns of the lexicon
#: features are ``(B, M, E)`` for length 2, then for length 3, and so on.
LEXICON_POSITIONS = ("B", "M", "E")
#: Classes of lexicon words by the part-of-speech tag their word list gives them (jieba's tag
#: set), for ``lexicon.pos``: a word without a vector of its own shares its class's vector.
LEXICON_CLASSES = ("person", "place", "organization", "proper", "abbreviation", "noun", "verb", "other")
#: How ``LexiconEmbedding`` pools the vectors of the words at one position (see there).
LEXICON_POOLINGS = ("mean", "frequency")


def pos_class(tag: str) -> str:
    """The ``LEXICON_CLASSES`` entry of a jieba part-of-speech tag ("" for no tag).

    Example:
        >>> [pos_class(t) for t in ("nr", "nrt", "ns", "nt", "nz", "j", "vn", "v", "m", "")]
        ['person', 'person', 'place', 'organization', 'proper', 'abbreviation', 'noun', 'verb', 'other', '']
    """
    if not tag:
        return ""
    for prefix, name in (("nr", "person"), ("ns", "place"), ("nt", "organization"), ("nz", "proper")):
        if tag.startswith(prefix):
            return name
    if tag == "j":
        return "abbreviation"
    if tag.startswith("n") or tag in ("vn", "an"):
        return "noun"
    return "verb" if tag.startswith("v") else "other"


def lexicon_matrix(tokens, lexicon, max_length: int) -> np.ndarray:
    """Which lexicon words cover each token, and where.

    Every run of 2 to ``max_length`` consecutive tokens whose concatenation is in ``lexicon``
    marks its first token ``B``, its inner tokens ``M`` and its last token ``E`` in the columns
    of its length (``3 * (length - 2) + position``; ``M`` of length 2 stays 0). All matches
    count, overlapping ones too.

    Args:
        tokens: the sentence's (normalised) tokens, for Chinese one character each.
        lexicon: a set of words.
        max_length: the longest word length (in tokens) looked up.

    Returns:
        a ``(len(tokens), 3 * (max_length - 1))`` float32 array of 0 and 1.

    Example:
        >>> lexicon_matrix(list("南京市长"), {"南京", "南京市", "市长"}, 3)[:, [0, 2, 3, 4, 5]].tolist()
        [[1.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    n = len(tokens)
    out = np.zeros((n, 3 * (max_length - 1)), dtype="float32")
    for i in range(n):
        word = tokens[i]
        for length in range(2, min(max_length, n - i) + 1):
            word += tokens[i + length - 1]
            if word in lexicon:
                col = 3 * (length - 2)
                out[i, col] = 1.0
                out[i + 1 : i + length - 1, col + 1] = 1.0
                out[i + length - 1, col + 2] = 1.0
    return out


def lexicon_slots(max_length: int) -> list[tuple[str, int, int]]:
    """The columns of ``lexicon_word_ids``: ``(position, length, offset)`` -- the word of
    ``length`` tokens starting ``offset`` tokens before the token, which is its ``position``
    (``B`` offset 0, ``M`` offsets 1 .. length - 2, ``E`` offset length - 1)."""
    slots = [("B", n, 0) for n in range(2, max_length + 1)]
    slots += [("M", n, k) for n in range(3, max_length + 1) for k in range(1, n - 1)]
    slots += [("E", n, n - 1) for n in range(2, max_length + 1)]
    return slots


def lexicon_word_ids(tokens, index, max_length: int) -> np.ndarray:
    """The ids of the lexicon words covering each token, one column per ``lexicon_slots``.

    Args:
        tokens: the sentence's (normalised) tokens.
        index: word -> id (>= 1) for every lexicon word.
        max_length: the longest word length (in tokens) looked up.

    Returns:
        a ``(len(tokens), len(lexicon_slots(max_length)))`` int32 array; 0 where no word.

    Example:
        >>> lexicon_word_ids(list("南京市"), {"南京": 2, "南京市": 3}, 3).tolist()  # B2 B3 M3 E2 E3
        [[2, 3, 0, 0, 0], [0, 0, 3, 2, 0], [0, 0, 0, 0, 3]]
    """
    n = len(tokens)
    begins = {}
    for length in range(2, max_length + 1):
        ids = np.zeros(n, dtype="int32")
        for i in range(n - length + 1):
            ids[i] = index.get("".join(tokens[i : i + length]), 0)
        begins[length] = ids
    slots = lexicon_slots(max_length)
    out = np.zeros((n, len(slots)), dtype="int32")
    for col, (_, length, offset) in enumerate(slots):
        if offset < n:
            out[offset:, col] = begins[length][: n - offset]
    return out


def lexicon_word_counts(sentences, lexicon, max_length: int) -> tuple[Counter, Counter]:
    """How often each lexicon word of 2 to ``max_length`` tokens is matched in ``sentences``
    (token lists), in one pass: every match, and only the matches that no longer matched word
    covers (SoftLexicon's counting: a word inside a longer match does not count there, so short
    words do not outweigh the long ones that contain them).

    Example:
        >>> every, outer = lexicon_word_counts([list("南京市长"), list("南京")], {"南京", "南京市", "市长"}, 3)
        >>> sorted(every.items()), sorted(outer.items())
        ([('南京', 2), ('南京市', 1), ('市长', 1)], [('南京', 1), ('南京市', 1), ('市长', 1)])
    """
    every, outer = Counter(), Counter()
    for tokens in sentences:
        n = len(tokens)
        spans = []
        for i in range(n):
            word = tokens[i]
            for length in range(2, min(max_length, n - i) + 1):
                word += tokens[i + length - 1]
                if word in lexicon:
                    spans.append((i, i + length, word))
        longest = {}  # start -> the end of the longest match starting there
        for i, j, _ in spans:
            longest[i] = max(longest.get(i, 0), j)
        reach, reach_before = 0, {}  # the furthest end of a match starting before i
        for i in sorted(longest):
            reach_before[i] = reach
            reach = max(reach, longest[i])
        for i, j, word in spans:
            every[word] += 1
            if reach_before[i] < j and longest[i] == j:
                outer[word] += 1
    return every, outer


def jieba_dictionary_path() -> str:
    """The path of the dictionary file (``dict.txt``: word, frequency, part of speech) that
    the installed jieba package ships."""
    import jieba

    return os.path.join(os.path.dirname(os.path.abspath(jieba.__file__)), "dict.txt")


def read_word_list(path: str, min_freq: int = 1, what: str = "lexicon_path") -> dict:
    """Words of a jieba-style dictionary: one word a line, optionally followed by whitespace,
    a frequency and a part-of-speech tag (either may be left out, as in jieba user
    dictionaries). Words with a frequency below ``min_freq`` are left out (a word without one
    is kept). Blank lines and lines starting with ``#`` are skipped.

    Returns:
        word -> its part-of-speech tag ("" where the line gives none).
    """
    if not os.path.isfile(path):
        raise ConfigError(what, "must be the path of an existing word list (one word a line)", path)
    words = {}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            has_freq = len(fields) > 1 and fields[1].isdigit()
            if has_freq and int(fields[1]) < min_freq:
                continue
            tags = fields[2:] if has_freq else fields[1:]
            if tags or fields[0] not in words:
                words[fields[0]] = tags[0] if tags else ""
    return words


@keras.saving.register_keras_serializable(package=PACKAGE)
class LexiconEmbedding(keras.layers.Layer):
    """SoftLexicon-style word vectors: the pooled embeddings of the lexicon words in which a
    token is the first (B), an inner (M) and the last (E) character, concatenated.

    Input: ``(batch, time, slots)`` word ids laid out as ``lexicon_slots(max_length)`` (0: no
    word); output ``(batch, time, 3 * dim)`` (zeros for a position without words).

    Args:
        vocab_size: number of word ids (0 is "no word", 1 a lexicon word unseen in training).
        dim: size of the word embeddings.
        max_length: the longest word length, which fixes the slot layout.
        pooling: ``mean``: each position's vector is the mean of its words' vectors.
            ``frequency``: SoftLexicon's weighted pooling: a word ``w`` weighs ``z(w)`` (a
            non-trainable weight per id, ``word_weight``, set with ``set_word_weights``; all
            ones until then), and each position's vector is ``3 * sum(z(w) e(w)) / Z`` over
            its words, with ``Z`` the total weight of the token's words in *all three*
            positions, so the vectors also tell which position holds the token's frequent words.

    Example:
        >>> import numpy as np
        >>> LexiconEmbedding(5, 4, 3)(np.array([[[2, 3, 0, 0, 0]]])).shape
        (1, 1, 12)
    """

    def __init__(self, vocab_size: int, dim: int, max_length: int, pooling: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if pooling not in LEXICON_POOLINGS:
            raise ValueError(f"LexiconEmbedding pooling must be one of {', '.join(LEXICON_POOLINGS)}; got {pooling!r}")
        self.vocab_size, self.dim, self.max_length, self.pooling = vocab_size, dim, max_length, pooling
        self.embedding = keras.layers.Embedding(vocab_size, dim, name="lexicon_word_embedding")
        slots = lexicon_slots(max_length)
        self._groups = [[i for i, slot in enumerate(slots) if slot[0] == p] for p in LEXICON_POSITIONS]
        self.word_weight = None

    def build(self, input_shape):
        self.embedding.build((None, None))
        if self.pooling == "frequency":
            self.word_weight = self.add_weight(shape=(self.vocab_size,), initializer="ones", trainable=False, name="word_weight")

    def set_word_weights(self, weights):
        """Set ``z(w)`` of every word id (``frequency`` pooling): ``vocab_size`` values >= 0."""
        weights = np.asarray(weights, dtype="float32")
        if self.pooling != "frequency":
            raise ValueError("set_word_weights needs pooling='frequency'")
        if weights.shape != (self.vocab_size,) or (weights < 0).any():
            raise ValueError(f"word weights must be {self.vocab_size} values >= 0; got shape {weights.shape}")
        self.word_weight.assign(weights)

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        vectors = self.embedding(ids)
        present = ops.cast(ops.not_equal(ids, 0), self.compute_dtype)[..., None]
        if self.pooling == "frequency":
            weight = present * ops.cast(ops.take(self.word_weight, ids, axis=0), self.compute_dtype)[..., None]
            total = ops.sum(weight, axis=2)  # over the words of all three positions
            scale = len(self._groups) / ops.maximum(total, 1e-6)
            return ops.concatenate(
                [ops.sum(ops.take(vectors * weight, group, axis=2), axis=2) * scale for group in self._groups], axis=-1
            )
        vectors = vectors * present
        means = []
        for group in self._groups:
            total = ops.sum(ops.take(vectors, group, axis=2), axis=2)
            count = ops.sum(ops.take(present, group, axis=2), axis=2)
            means.append(total / ops.maximum(count, 1.0))
        return ops.concatenate(means, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], 3 * self.dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim, "max_length": self.max_length,
                "pooling": self.pooling}


class Lexicon(TokenFeature):
    """``lexicon``: for each character, which lexicon words of each length cover it as their
    first (B), inner (M) or last (E) character (0/1 features, see ``lexicon_matrix``): every
    word of the lexicon that occurs in the sentence, not only the one segmentation jieba picks
    (a lattice-like signal, as in SoftLexicon). The lexicon is saved with the model
    (``lexicon.txt``), so a saved tagger does not depend on the jieba version.

    Options: ``max_length`` (longest word looked up, 2..20), ``jieba`` (take the words of
    jieba's bundled dictionary), ``min_freq`` (leave out rarer jieba words), ``path`` (a user
    word list, one word a line with an optional frequency and tag; its words are always kept),
    ``dim`` (0, or the size of trained word vectors: each character gets the pooled vectors of
    the words it begins, is inside and ends), ``word_min_freq`` (words matched fewer times in
    training share ``<unk>``), ``pooling`` (``mean``, or SoftLexicon's ``frequency``
    weighting; needs ``dim``), ``pos`` (words without a vector of their own share one per part
    of speech, ``LEXICON_CLASSES``; needs ``dim``), ``pretrained`` (a vectors file that starts
    the word vectors; needs ``dim``).
    """

    name = "lexicon"
    needs_char_tokenizer = True
    OPTIONS = {
        "max_length": (4, lambda n, v: check_int(n, v, minimum=2, maximum=20)),
        "jieba": (True, check_bool),
        "min_freq": (1, positive_int()),
        "path": (None, lambda n, v: check_str(n, v, allow_none=True)),
        "dim": (0, positive_int(0)),
        "word_min_freq": (1, positive_int()),
        "pooling": ("mean", lambda n, v: check_choice(n, v, LEXICON_POOLINGS)),
        "pos": (False, check_bool),
        "pretrained": (None, lambda n, v: check_str(n, v, allow_none=True)),
    }

    def __init__(self, options=None, path=""):
        super().__init__(options, path)
        self.lexicon_ = self.lexicon_words_ = self.lexicon_classes_ = None
        self._word_weights = None

    def check(self):
        for option, value, what in (("pooling", self.pooling != "mean", "pools the word vectors"),
                                    ("pos", self.pos, "groups the words without a vector of their own by part of speech"),
                                    ("pretrained", self.pretrained is not None, "starts the word vectors")):
            if value and not self.dim:
                raise ConfigError(option, f"needs dim > 0 (it {what})", self.options[option])
        if not self.jieba and self.path is None:
            raise ConfigError("jieba", "is false and no path is given: the lexicon needs words (jieba: true, or a word list in path)", False)

    @property
    def uses_words(self) -> bool:
        """The feature has trained word vectors (``dim`` > 0)."""
        return bool(self.dim)

    @property
    def input_names(self):
        return ["lexicon", "lexicon_ids"] if self.uses_words else ["lexicon"]

    @property
    def is_fitted(self):
        return self.lexicon_ is not None and (not self.uses_words or self.lexicon_words_ is not None) and (
            not self.pos or self.lexicon_classes_ is not None)

    def class_tokens(self) -> tuple:
        """The reserved entries of ``lexicon_words_`` after ``<pad>`` and ``<unk>``."""
        return tuple(f"<pos:{c}>" for c in LEXICON_CLASSES) if self.pos else ()

    def set_lexicon(self, words, classes=None):
        self.lexicon_ = list(words)
        self._lexicon = frozenset(self.lexicon_)
        if classes is not None and len(classes) != len(self.lexicon_):
            raise ValueError(f"{len(classes)} lexicon classes for {len(self.lexicon_)} lexicon words")
        self.lexicon_classes_ = None if classes is None else list(classes)

    def set_words(self, words):
        self.lexicon_words_ = list(words)
        reserved = 2 + len(self.class_tokens())
        ids = {w: i for i, w in enumerate(self.lexicon_words_) if i >= reserved}
        # A word without a vector of its own: its class's (pos), else <unk> (1).
        shared = {c: 2 + i for i, c in enumerate(LEXICON_CLASSES)} if self.pos else {}
        classes = self.lexicon_classes_ or [""] * len(self.lexicon_)
        self._ids = {w: ids.get(w) or shared.get(c, 1) for w, c in zip(self.lexicon_, classes)}

    def ids_of(self, word_list) -> list[int]:
        """The word ids (as ``lexicon_word_ids`` gives them) of lexicon words."""
        return [self._ids[w] for w in word_list]

    def _read_words(self, normalize) -> dict:
        words = {}  # word -> part-of-speech tag; a user list's tag wins, its untagged words keep jieba's
        lists = [read_word_list(jieba_dictionary_path(), self.min_freq, f"{self.where}.jieba")] if self.jieba else []
        if self.path is not None:
            lists.append(read_word_list(self.path, what=f"{self.where}.path"))
        for found in lists:
            for word, tag in found.items():
                if normalize is not None:
                    word = "".join(normalize(c) for c in word)
                if tag or word not in words:
                    words[word] = tag
        return words

    def fit(self, sentences, normalize=None):
        words = self._read_words(normalize)
        lexicon = sorted(w for w in words if 2 <= len(w) <= self.max_length and not any(c.isspace() for c in w))
        self.set_lexicon(lexicon, [pos_class(words[w]) for w in lexicon] if self.pos else None)
        log.info("Lexicon features: %d words of 2 to %d characters", len(self.lexicon_), self.max_length)
        self.start_matrices = {}
        if not self.uses_words:
            return
        counts, outer = lexicon_word_counts([list(s) for s in sentences], self._lexicon, self.max_length)
        vectors = read_pretrained(self.pretrained, self.dim, self._lexicon, f"{self.where}.pretrained")
        # Every lexicon word with a pretrained vector gets its own row, seen in training or not.
        self.set_words(feature_vocab(counts, self.word_min_freq, reserved=self.class_tokens(), extra=vectors))
        if self.pretrained is not None:
            rows = {i: vectors[t] for i, t in enumerate(self.lexicon_words_) if i >= 1 and t in vectors}
            self.start_matrices = {"lexicon_embedding": ("lexicon_word", len(self.lexicon_words_), self.dim, rows)}
            log.info("Pretrained vectors start %d of the %d lexicon word vectors", len(rows), len(self.lexicon_words_))
        self._word_weights = None
        own = 2 + len(self.class_tokens())  # <pad>, <unk> and the classes weigh 1
        if self.pooling == "frequency":
            weights = np.ones(len(self.lexicon_words_), dtype="float32")
            for i, word in enumerate(self.lexicon_words_[own:], start=own):
                weights[i] += outer.get(word, 0)
            self._word_weights = weights
        seen = sum(1 for c in counts.values() if c >= self.word_min_freq)
        extra = len(self.lexicon_words_) - own - seen
        log.info("Lexicon word vectors for %d words seen in training%s", seen, f" and {extra} more from pretrained" if extra > 0 else "")
        if self.pos:
            shared = Counter(self.lexicon_words_[i] for i in self._ids.values() if 2 <= i < own)
            log.info("Lexicon words without a vector of their own, by part of speech: %s; no tag (<unk>): %d",
                     ", ".join(f"{c} {shared[f'<pos:{c}>']}" for c in LEXICON_CLASSES), sum(1 for i in self._ids.values() if i == 1))

    def arrays(self, sentence):
        tokens = list(sentence)
        out = {"lexicon": lexicon_matrix(tokens, self._lexicon, self.max_length)}
        if self.uses_words:
            out["lexicon_ids"] = lexicon_word_ids(tokens, self._ids, self.max_length)
        return out

    def inputs(self):
        width = len(LEXICON_POSITIONS) * (self.max_length - 1)
        found = {"lexicon": keras.Input(shape=(None, width), dtype="float32", name="lexicon")}
        if self.uses_words:
            found["lexicon_ids"] = keras.Input(shape=(None, len(lexicon_slots(self.max_length))), dtype="int32", name="lexicon_ids")
        return found

    def vectors(self, inputs):
        parts = [inputs["lexicon"]]
        if self.uses_words:
            pooled = LexiconEmbedding(len(self.lexicon_words_), self.dim, self.max_length, self.pooling, name="lexicon_embedding")
            parts.append(pooled(inputs["lexicon_ids"]))
        return parts

    def after_build(self, model):
        if self.uses_words and self.pooling == "frequency":
            if self._word_weights is None:
                raise RuntimeError("lexicon pooling 'frequency' needs the word weights of fit; call it before build")
            model.get_layer("lexicon_embedding").set_word_weights(self._word_weights)

    def assets(self):
        found = {"lexicon.txt": self.lexicon_}
        if self.lexicon_words_ is not None:
            found["lexicon_words.txt"] = self.lexicon_words_
        if self.lexicon_classes_ is not None:
            found["lexicon_classes.txt"] = self.lexicon_classes_
        return found

    def __getstate__(self):
        return {**super().__getstate__(), "_word_weights": None}

    def load_assets(self, directory):
        classes = read_lines(os.path.join(directory, "lexicon_classes.txt")) if self.pos else None
        self.set_lexicon(read_lines(os.path.join(directory, "lexicon.txt")), classes)
        if self.uses_words:
            self.set_words(read_lines(os.path.join(directory, "lexicon_words.txt")))
