"""Sequence tagging stages: the ``rnn_tagger`` model and the ``tags`` / ``entities`` decoders.

The tagger reads one vector per token (from the vectorizer's layer, plus optional features),
runs stacked (bi)recurrent layers over the sentence and scores every tag at every step. The
scores become tags either by a softmax per token or by a linear-chain CRF (``output: crf``)
that scores whole tag sequences and decodes with Viterbi.

Optional token features, each learned from the training tokens and saved as a plain file:

- ``char_features: cnn | lstm``: a vector per word computed from its characters (a char CNN
  with max-pooling, or a char BiLSTM), for English words the vocabulary has never seen;
- ``case_features``: the word's shape (lower, Title, UPPER, digits, punctuation, ...), which
  keeps capitalisation when the vocabulary lowercases;
- ``bigram_features``: for character-level Chinese, embeddings of the character bigrams
  to the left and to the right of each character;
- ``word_boundary``: for character-level Chinese, the character's position (B/M/E/S) in the
  jieba word that contains it (the "softword" feature);
- ``lexicon_features``: for character-level Chinese, which dictionary words cover each
  character and where (begin / inside / end of a word of length 2, 3, ...): every word of a
  lexicon (jieba's bundled dictionary and/or a user word list) that occurs in the sentence,
  not only the one segmentation jieba picks (a lattice-like signal, as in SoftLexicon).
  Unlike ``word_boundary`` it exports: the lookup runs in the SavedModel graph.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections import Counter

import keras
import numpy as np
from keras import ops

from .errors import ConfigError, DataError
from .registry import register
from .tag_schemes import SCHEMES, OUTSIDE, convert, scheme_tags, spans_to_tags, tags_to_spans

from .base import Stage, check_bool, check_choice, check_float, check_int, check_str
from .crf import CRF, PACKAGE, CRFTaggerModel
from .layers import TokenDropout
from .models import RecurrentModel
from .vectorizers import initial_matrix, read_vectors

log = logging.getLogger("ktp")

#: Ids of the word-shape feature (0 is padding).
CASES = ("<pad>", "digits", "has_digit", "upper", "title", "lower", "mixed", "other")
#: Ids of the word-boundary feature: a character's position in its jieba word.
BOUNDARIES = ("<pad>", "B", "M", "E", "S")
FEATURE_PAD, FEATURE_UNK = "<pad>", "<unk>"
BIGRAM_EDGE = "<s>"
#: A character's positions in a lexicon word, per word length: the columns of the lexicon
#: features are ``(B, M, E)`` for length 2, then for length 3, and so on.
LEXICON_POSITIONS = ("B", "M", "E")
#: Classes of lexicon words by the part-of-speech tag their word list gives them (jieba's tag
#: set), for ``lexicon_pos``: a word without a vector of its own shares its class's vector.
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


def word_shape(token: str) -> int:
    """The id in ``CASES`` of a token's shape, from the Unicode categories of its characters.

    ``digits``: every character a decimal digit (Nd); ``has_digit``: some; ``other``: no letter
    (L*); ``upper``: no lowercase (Ll) but some upper/title-case (Lu, Lt) letter; ``title``: an
    upper/title-case first character and none after it; ``lower``: no upper/title-case letter
    at all (this includes caseless scripts such as Chinese); ``mixed``: the rest. The SavedModel
    export computes the same with regular expressions over these categories.

    Example:
        >>> [CASES[word_shape(t)] for t in ("Oslo", "EU", "1996", "re-elect", "iPhone", ",")]
        ['title', 'upper', 'digits', 'lower', 'mixed', 'other']
    """
    cats = [unicodedata.category(c) for c in token]
    if not cats:
        return 7
    if all(c == "Nd" for c in cats):
        return 1
    if "Nd" in cats:
        return 2
    if not any(c.startswith("L") for c in cats):
        return 7
    upper = [c in ("Lu", "Lt") for c in cats]
    if "Ll" not in cats and any(upper):
        return 3
    if upper[0] and not any(upper[1:]):
        return 4
    if not any(upper):
        return 5
    return 6


@keras.saving.register_keras_serializable(package=PACKAGE)
class CharEncoder(keras.layers.Layer):
    """One vector per word from its characters: ``(batch, words, chars)`` ids -> ``(batch, words, dim)``.

    Args:
        vocab_size: number of character ids (0 is padding).
        char_dim: size of the character embeddings.
        kind: ``cnn`` (convolution + max over the characters) or ``lstm`` (a BiLSTM's final
            states, both directions concatenated).
        units: filters of the CNN, or units per direction of the BiLSTM.
        kernel_size: width of the CNN's window.

    Example:
        >>> import numpy as np
        >>> CharEncoder(10, 4, "cnn", 6)(np.array([[[2, 3, 0], [0, 0, 0]]])).shape
        (1, 2, 6)
    """

    def __init__(self, vocab_size: int, char_dim: int, kind: str = "cnn", units: int = 32, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("cnn", "lstm"):
            raise ValueError(f"CharEncoder kind must be 'cnn' or 'lstm'. Received: kind={kind!r}")
        self.vocab_size, self.char_dim, self.kind, self.units, self.kernel_size = vocab_size, char_dim, kind, units, kernel_size
        self.embedding = keras.layers.Embedding(vocab_size, char_dim, name="char_embedding")
        if kind == "cnn":
            self.encoder = keras.layers.Conv1D(units, kernel_size, padding="same", activation="tanh", name="char_cnn")
        else:
            self.encoder = keras.layers.Bidirectional(keras.layers.LSTM(units), name="char_bilstm")

    @property
    def output_dim(self) -> int:
        return self.units * (2 if self.kind == "lstm" else 1)

    def build(self, input_shape):
        self.embedding.build((None, None))
        self.encoder.build((None, None, self.char_dim))

    def call(self, char_ids):
        char_ids = ops.cast(char_ids, "int32")
        shape = ops.shape(char_ids)
        flat = ops.reshape(char_ids, (-1, shape[2]))
        present = ops.not_equal(flat, 0)
        # Padding characters become zero vectors, like the convolution's own edge padding, so
        # a word's vector does not depend on how wide its batch is padded.
        x = self.embedding(flat) * ops.cast(present, self.compute_dtype)[:, :, None]
        if self.kind == "cnn":
            h = self.encoder(x)
            # Max over the real characters only; a word with none (padding) gets zeros.
            h = ops.where(present[:, :, None], h, ops.full_like(h, -1e9))
            h = ops.max(h, axis=1)
            h = ops.where(ops.any(present, axis=1)[:, None], h, ops.zeros_like(h))
        else:
            # A padding word has no characters; let it read one step so no row is fully masked.
            first = ops.arange(ops.shape(flat)[1]) == 0
            h = self.encoder(x, mask=ops.logical_or(present, first[None, :]))
        return ops.reshape(h, (shape[0], shape[1], self.output_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "char_dim": self.char_dim,
            "kind": self.kind,
            "units": self.units,
            "kernel_size": self.kernel_size,
        }


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


def _feature_vocab(counts: Counter, min_freq: int, reserved=(), extra=()) -> list[str]:
    """``<pad>``, ``<unk>``, ``reserved``, then the items counted at least ``min_freq`` times
    and the ``extra`` ones (kept whatever their count), most frequent first."""
    kept = sorted({t for t, c in counts.items() if c >= min_freq} | set(extra), key=lambda t: (-counts[t], t))
    return [FEATURE_PAD, FEATURE_UNK, *reserved, *kept]


def _write_lines(path, items):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for item in items:
            if "\n" in item:
                raise ValueError(f"cannot save the feature {item!r}: it holds a newline")
            f.write(item + "\n")


def _read_lines(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: a feature vocabulary of the saved tagger")
    with open(path, encoding="utf-8", newline="\n") as f:
        items = f.read().split("\n")
    if items and items[-1] == "":
        items.pop()
    return items


@register("model", "rnn_tagger")
class RNNTagger(RecurrentModel):
    """Many-to-many recurrent tagger: one tag per token, by softmax or CRF.

    ids (+ features) -> one-hot or embedding -> [dropout] -> stacked (bi)RNN -> dropout ->
    dense tag scores -> softmax, or CRF (Viterbi decoding, marginals by forward-backward).

    Args:
        cell: ``simple_rnn``, ``lstm`` or ``gru``.
        units: units per recurrent layer (per direction when bidirectional).
        layers: number of stacked recurrent layers.
        bidirectional: read the sentence both ways and concatenate.
        dropout: dropout on each recurrent layer's inputs and on the tag scorer's input.
        recurrent_dropout: dropout on the recurrent state.
        input_dropout: dropout on the token vectors (features included).
        token_dropout: word dropout: in training, each token id becomes ``<unk>`` with this
            probability (``TokenDropout``; the features stay), as Lample et al. (2016) replace
            rare words, so the tagger learns to tag from context and features alone.
        output: ``softmax`` (independent tags) or ``crf`` (a linear-chain CRF).
        crf_constraints: with ``crf``, forbid transitions the tag scheme does not allow
            (``O`` -> ``I-PER`` in BIO), in training and in decoding.
        char_features: ``none``, ``cnn`` or ``lstm``: a word vector from its characters.
        char_dim: size of the character embeddings.
        char_units: CNN filters, or BiLSTM units per direction, of the character encoder.
        char_kernel: width of the character CNN's window.
        char_max_length: characters kept per word (longer words keep their first and last
            halves).
        char_min_freq: characters seen fewer times in training map to ``<unk>``.
        case_features: add the word's shape (lower, Title, UPPER, digits, ...).
        case_dim: size of the word-shape embedding.
        bigram_features: add embeddings of the token bigrams left and right of each token
            (character bigrams for character-level Chinese).
        bigram_dim: size of each bigram embedding.
        bigram_min_freq: bigrams seen fewer times in training map to ``<unk>``.
        word_boundary: add each character's position (B/M/E/S) in its jieba word; needs a
            ``char`` tokenizer.
        boundary_dim: size of the word-boundary embedding.
        lexicon_features: add, for each character, which lexicon words of each length cover
            it as their first (B), inner (M) or last (E) character (0/1 features, see
            ``lexicon_matrix``); needs a ``char`` tokenizer. The lexicon is saved with the
            model (``lexicon.txt``), so a saved tagger does not depend on the jieba version.
        lexicon_max_length: the longest lexicon word (in characters) looked up; 3 features
            per length from 2 to this.
        lexicon_jieba: take the words of jieba's bundled dictionary.
        lexicon_min_freq: leave out jieba dictionary words with a lower frequency.
        lexicon_path: a user word list (one word a line, optionally followed by a frequency,
            as jieba user dictionaries), added to the lexicon; its words are always kept.
        lexicon_dim: 0 (only the 0/1 features) or the size of trained embeddings of the
            lexicon words (SoftLexicon-style): for each character, the mean vector of the
            words it begins, of those it is inside and of those it ends, added to the 0/1
            features. Words matched in training sentences fewer than ``lexicon_word_min_freq``
            times share one vector (``<unk>``).
        lexicon_word_min_freq: see ``lexicon_dim``.
        lexicon_pooling: how the vectors of the words at one position are pooled: ``mean``, or
            ``frequency`` (SoftLexicon's weighted pooling, see ``LexiconEmbedding``): a word
            weighs 1 + the number of training matches not inside a longer matched word
            (``lexicon_word_counts``); words without a vector of their own weigh 1. Needs
            ``lexicon_dim > 0``.
        lexicon_pos: words without a vector of their own share one vector per part of speech
            (``LEXICON_CLASSES``: person, place, organization, other proper noun,
            abbreviation, noun, verb, other; from the tags of jieba's dictionary or the third
            field of a user list) instead of one ``<unk>``; needs ``lexicon_dim > 0``. Saved as
            ``lexicon_classes.txt``.
        bigram_pretrained: a vectors file (word2vec text or binary, GloVe, fastText ``.vec``;
            ``bigram_dim`` values each) whose vectors start the bigram embeddings; bigrams
            rarer than ``bigram_min_freq`` keep a row of their own when the file has them.
        lexicon_pretrained: the same for the lexicon word vectors (``lexicon_dim`` values):
            every lexicon word the file has gets a row started from its vector, seen in
            training or not (as SoftLexicon's pretrained word embeddings). Both files are read
            in ``fit`` only: a saved tagger holds the trained vectors.
        recurrent_initializer, kernel_initializer: initializers of the recurrent layers.
        optimizer, learning_rate, clipnorm, clipvalue: the optimizer and gradient clipping.
        learning_rate_decay: inverse-time decay per epoch: the rate in epoch ``e`` (from 0) is
            ``learning_rate / (1 + learning_rate_decay * e)``, applied smoothly per step
            (0: constant). It steadies the dev figures late in training.
        ema_momentum: null (off) or the momentum of a moving average of the weights that
            validation, the dev scorer, early stopping and the saved model use (see
            ``rnn_classifier``).
        ensemble: train this many taggers of this shape one after another (seeds ``seed``,
            ``seed + 1``, ...) and answer with their mean: a CRF ensemble decodes (Viterbi,
            marginals) with the mean of the members' per-token scores and the mean of their
            transition scores, i.e. it maximises the members' mean path score; a softmax
            ensemble averages the tag probabilities. One saved model holds all members.

    Example:
        >>> m = RNNTagger(cell="lstm", units=16, output="crf")
        >>> m.get_config()["output"]
        'crf'
    """

    fitted_attributes = ("model_",)

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 100,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.5,
        recurrent_dropout: float = 0.0,
        input_dropout: float = 0.0,
        token_dropout: float = 0.0,
        output: str = "crf",
        crf_constraints: bool = True,
        char_features: str = "none",
        char_dim: int = 25,
        char_units: int = 25,
        char_kernel: int = 3,
        char_max_length: int = 20,
        char_min_freq: int = 1,
        case_features: bool = False,
        case_dim: int = 8,
        bigram_features: bool = False,
        bigram_dim: int = 50,
        bigram_min_freq: int = 1,
        word_boundary: bool = False,
        boundary_dim: int = 20,
        lexicon_features: bool = False,
        lexicon_max_length: int = 4,
        lexicon_jieba: bool = True,
        lexicon_min_freq: int = 1,
        lexicon_path: str | None = None,
        lexicon_dim: int = 0,
        lexicon_word_min_freq: int = 1,
        lexicon_pooling: str = "mean",
        lexicon_pos: bool = False,
        bigram_pretrained: str | None = None,
        lexicon_pretrained: str | None = None,
        recurrent_initializer: str = "orthogonal",
        kernel_initializer: str = "glorot_uniform",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        learning_rate_decay: float = 0.0,
        clipnorm: float | None = 5.0,
        clipvalue: float | None = None,
        ema_momentum: float | None = None,
        ensemble: int = 1,
    ):
        super().__init__()
        self.model_ = None
        self.chars_ = None
        self.bigrams_ = None
        self.lexicon_ = None
        self.lexicon_words_ = None
        self.lexicon_classes_ = None
        self.pretrained_coverage_ = None
        self._pretrained_weights = {}
        self._lexicon_word_weights = None
        self._jieba = None

    def _validate(self):
        self._validate_common()
        check_choice("output", self.output, ("softmax", "crf"))
        check_bool("crf_constraints", self.crf_constraints)
        check_choice("char_features", self.char_features, ("none", "cnn", "lstm"))
        for name in ("char_dim", "char_units", "char_kernel", "char_max_length", "char_min_freq", "case_dim",
                     "bigram_dim", "bigram_min_freq", "boundary_dim"):
            check_int(name, getattr(self, name), minimum=1)
        if self.char_max_length < 2:
            raise ConfigError("char_max_length", "must be an integer >= 2", self.char_max_length)
        check_float("learning_rate_decay", self.learning_rate_decay, 0.0)
        check_float("token_dropout", self.token_dropout, 0.0, 1.0)
        check_int("ensemble", self.ensemble, minimum=1)
        check_bool("case_features", self.case_features)
        check_bool("bigram_features", self.bigram_features)
        check_bool("word_boundary", self.word_boundary)
        check_bool("lexicon_features", self.lexicon_features)
        check_int("lexicon_max_length", self.lexicon_max_length, minimum=2, maximum=20)
        check_bool("lexicon_jieba", self.lexicon_jieba)
        check_int("lexicon_min_freq", self.lexicon_min_freq, minimum=1)
        check_str("lexicon_path", self.lexicon_path, allow_none=True)
        check_int("lexicon_dim", self.lexicon_dim, minimum=0)
        check_int("lexicon_word_min_freq", self.lexicon_word_min_freq, minimum=1)
        check_bool("lexicon_pos", self.lexicon_pos)
        check_choice("lexicon_pooling", self.lexicon_pooling, LEXICON_POOLINGS)
        if self.lexicon_pooling != "mean" and not self.uses_lexicon_words:
            raise ConfigError(
                "lexicon_pooling", "needs lexicon_features: true and lexicon_dim > 0 (it pools the lexicon word vectors)",
                self.lexicon_pooling,
            )
        check_str("bigram_pretrained", self.bigram_pretrained, allow_none=True)
        check_str("lexicon_pretrained", self.lexicon_pretrained, allow_none=True)
        if self.bigram_pretrained is not None and not self.bigram_features:
            raise ConfigError("bigram_pretrained", "needs bigram_features: true", self.bigram_pretrained)
        if self.lexicon_pretrained is not None and not self.uses_lexicon_words:
            raise ConfigError("lexicon_pretrained", "needs lexicon_features: true and lexicon_dim > 0", self.lexicon_pretrained)
        if self.lexicon_pos and not self.uses_lexicon_words:
            raise ConfigError(
                "lexicon_pos", "needs lexicon_features: true and lexicon_dim > 0 (it groups the words without a "
                "vector of their own by part of speech)", True,
            )
        if self.lexicon_features and not self.lexicon_jieba and self.lexicon_path is None:
            raise ConfigError(
                "lexicon_features", "needs words: set lexicon_jieba: true or give a word list in lexicon_path", True
            )

    @property
    def uses_lexicon_words(self) -> bool:
        return bool(self.lexicon_features and self.lexicon_dim)

    @property
    def uses_crf(self) -> bool:
        return self.output == "crf"

    @property
    def is_fitted(self) -> bool:
        if self.model_ is None:
            return False
        if self.char_features != "none" and self.chars_ is None:
            return False
        if self.lexicon_features and self.lexicon_ is None:
            return False
        if self.uses_lexicon_words and self.lexicon_words_ is None:
            return False
        if self.lexicon_pos and self.lexicon_classes_ is None:
            return False
        return not (self.bigram_features and self.bigrams_ is None)

    # -- features ---------------------------------------------------------------------------
    def fit_features(self, sentences, normalize=None) -> "RNNTagger":
        """Learn the character and bigram vocabularies from tokenized training sentences, and
        read the lexicon.

        Args:
            sentences: ``TokenizedText`` objects (token lists with ``.raw`` token strings).
            normalize: the tokenizer's normalisation of one character (NFKC, lowercasing),
                applied to the lexicon's words so they match the normalised tokens.
        """
        self._pretrained_weights, self.pretrained_coverage_ = {}, None
        if self.char_features != "none":
            counts = Counter(c for s in sentences for tok in _raw(s) for c in tok)
            self.chars_ = _feature_vocab(counts, self.char_min_freq)
            self._char_index = {c: i for i, c in enumerate(self.chars_)}
        if self.bigram_features:
            counts = Counter(b for s in sentences for pair in _bigrams(list(s)) for b in pair)
            vectors = self._read_pretrained("bigram_pretrained", "bigram_dim", set(counts))
            # A rare bigram with a pretrained vector keeps its own row.
            self.bigrams_ = _feature_vocab(counts, self.bigram_min_freq, reserved=(BIGRAM_EDGE,), extra=vectors)
            self._bigram_index = {b: i for i, b in enumerate(self.bigrams_)}
            if self.bigram_pretrained is not None:
                self._use_pretrained("bigram_embedding", "bigram", self.bigrams_, vectors, self.bigram_dim)
        if self.lexicon_features:
            words = {}  # word -> part-of-speech tag; a user list's tag wins, its untagged words keep jieba's
            lists = [read_word_list(jieba_dictionary_path(), self.lexicon_min_freq, "lexicon_jieba")] if self.lexicon_jieba else []
            if self.lexicon_path is not None:
                lists.append(read_word_list(self.lexicon_path))
            for found in lists:
                for word, tag in found.items():
                    if normalize is not None:
                        word = "".join(normalize(c) for c in word)
                    if tag or word not in words:
                        words[word] = tag
            lexicon = sorted(w for w in words if 2 <= len(w) <= self.lexicon_max_length and not any(c.isspace() for c in w))
            self._set_lexicon(lexicon, [pos_class(words[w]) for w in lexicon] if self.lexicon_pos else None)
            log.info("Lexicon features: %d words of 2 to %d characters", len(self.lexicon_), self.lexicon_max_length)
            if self.uses_lexicon_words:
                counts, outer = lexicon_word_counts([list(s) for s in sentences], self._lexicon, self.lexicon_max_length)
                vectors = self._read_pretrained("lexicon_pretrained", "lexicon_dim", self._lexicon)
                # Every lexicon word with a pretrained vector gets its own row, seen in training or not.
                self._set_lexicon_words(_feature_vocab(counts, self.lexicon_word_min_freq, reserved=self._class_tokens(), extra=vectors))
                if self.lexicon_pretrained is not None:
                    self._use_pretrained("lexicon_embedding", "lexicon_word", self.lexicon_words_, vectors, self.lexicon_dim)
                self._lexicon_word_weights = None
                if self.lexicon_pooling == "frequency":
                    weights = np.ones(len(self.lexicon_words_), dtype="float32")
                    own = 2 + len(self._class_tokens())  # <pad>, <unk> and the classes weigh 1
                    for i, word in enumerate(self.lexicon_words_[own:], start=own):
                        weights[i] += outer.get(word, 0)
                    self._lexicon_word_weights = weights
                seen = sum(1 for c in counts.values() if c >= self.lexicon_word_min_freq)
                own = len(self.lexicon_words_) - 2 - len(self._class_tokens())
                log.info("Lexicon word vectors for %d words seen in training%s", seen,
                         f" and {own - seen} more from lexicon_pretrained" if own > seen else "")
                if self.lexicon_pos:
                    shared = Counter(self.lexicon_words_[i] for i in self._lexicon_ids.values() if 2 <= i < 2 + len(LEXICON_CLASSES))
                    log.info("Lexicon words without a vector of their own, by part of speech: %s; no tag (<unk>): %d",
                             ", ".join(f"{c} {shared[f'<pos:{c}>']}" for c in LEXICON_CLASSES),
                             sum(1 for i in self._lexicon_ids.values() if i == 1))
        return self

    def _read_pretrained(self, option: str, dim_option: str, wanted) -> dict:
        """The vectors of ``wanted`` items in the file named by ``option`` ({} when unset)."""
        path = getattr(self, option)
        if path is None:
            return {}
        if not os.path.isfile(path):
            raise ConfigError(option, "must be the path of an existing vectors file (word2vec text or binary, GloVe, fastText .vec)", path)
        vectors, dim = read_vectors(path, "auto", set(wanted))
        if dim != getattr(self, dim_option):
            raise ConfigError(dim_option, f"must match the {dim}-dimensional vectors in {path} ({option})", getattr(self, dim_option))
        return vectors

    def _use_pretrained(self, layer: str, what: str, items: list, vectors: dict, dim: int):
        """Start the embedding ``layer`` (rows: ``items``; its only weights) from ``vectors``; report coverage."""
        rows = {i: vectors[t] for i, t in enumerate(items) if i >= 1 and t in vectors}
        # drawn in build, with the training seed: each ensemble member gets its own random rows
        self._pretrained_weights[layer] = (len(items), dim, rows)
        self.pretrained_coverage_ = {**(self.pretrained_coverage_ or {}), what: {"rows": len(items), "pretrained": len(rows)}}
        log.info("Pretrained vectors start %d of the %d %s vectors", len(rows), len(items), what)

    def _set_lexicon(self, words, classes=None):
        self.lexicon_ = list(words)
        self._lexicon = frozenset(self.lexicon_)
        if classes is not None and len(classes) != len(self.lexicon_):
            raise ValueError(f"{len(classes)} lexicon classes for {len(self.lexicon_)} lexicon words")
        self.lexicon_classes_ = None if classes is None else list(classes)

    def _class_tokens(self) -> tuple:
        """The reserved entries of ``lexicon_words_`` after ``<pad>`` and ``<unk>``."""
        return tuple(f"<pos:{c}>" for c in LEXICON_CLASSES) if self.lexicon_pos else ()

    def _set_lexicon_words(self, words):
        self.lexicon_words_ = list(words)
        reserved = 2 + len(self._class_tokens())
        ids = {w: i for i, w in enumerate(self.lexicon_words_) if i >= reserved}
        # A word without a vector of its own: its class's (lexicon_pos), else <unk> (1).
        shared = {c: 2 + i for i, c in enumerate(LEXICON_CLASSES)} if self.lexicon_pos else {}
        classes = self.lexicon_classes_ or [""] * len(self.lexicon_)
        self._lexicon_ids = {w: ids.get(w) or shared.get(c, 1) for w, c in zip(self.lexicon_, classes)}

    def lexicon_ids_of(self, word_list) -> list[int]:
        """The word ids (as ``lexicon_word_ids`` gives them) of lexicon words."""
        return [self._lexicon_ids[w] for w in word_list]

    def feature_names(self) -> list[str]:
        """Names of the model inputs besides ``token_ids``, in a fixed order."""
        names = []
        if self.char_features != "none":
            names.append("char_ids")
        if self.case_features:
            names.append("case_ids")
        if self.bigram_features:
            names.append("bigram_ids")
        if self.word_boundary:
            names.append("boundary_ids")
        if self.lexicon_features:
            names.append("lexicon")
        if self.uses_lexicon_words:
            names.append("lexicon_ids")
        return names

    def features(self, sentence) -> dict:
        """The extra inputs of one tokenized sentence, as unpadded numpy arrays."""
        out = {}
        if self.char_features != "none":
            index = self._char_index
            n = self.char_max_length
            rows = []
            for tok in _raw(sentence):
                if len(tok) > n:
                    tok = tok[: n // 2] + tok[len(tok) - (n - n // 2):]
                rows.append([index.get(c, 1) for c in tok])
            width = max((len(r) for r in rows), default=1) or 1
            arr = np.zeros((len(rows), width), dtype="int32")
            for i, r in enumerate(rows):
                arr[i, : len(r)] = r
            out["char_ids"] = arr
        if self.case_features:
            out["case_ids"] = np.array([word_shape(t) for t in _raw(sentence)], dtype="int32")
        if self.bigram_features:
            index = self._bigram_index
            out["bigram_ids"] = np.array(
                [[index.get(left, 1), index.get(right, 1)] for left, right in _bigrams(list(sentence))], dtype="int32"
            ).reshape(len(sentence), 2)
        if self.word_boundary:
            out["boundary_ids"] = self._boundaries(list(sentence))
        if self.lexicon_features:
            out["lexicon"] = lexicon_matrix(list(sentence), self._lexicon, self.lexicon_max_length)
        if self.uses_lexicon_words:
            out["lexicon_ids"] = lexicon_word_ids(list(sentence), self._lexicon_ids, self.lexicon_max_length)
        return out

    def boundary_tokenizer(self):
        """The jieba tokenizer of the word-boundary feature: jieba's default dictionary, loaded once."""
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._jieba = jieba.Tokenizer()
            self._jieba.initialize()
        return self._jieba

    def _boundaries(self, tokens) -> np.ndarray:
        self.boundary_tokenizer()
        # Each token's first character decides its position in the jieba word around it.
        starts, pos = [], 0
        for tok in tokens:
            starts.append(pos)
            pos += len(tok)
        positions = np.zeros(pos, dtype="int32")
        at = 0
        for word in self._jieba.cut("".join(tokens), HMM=True):
            n = len(word)
            if n == 1:
                positions[at] = 4
            else:
                positions[at] = 1
                positions[at + 1 : at + n - 1] = 2
                positions[at + n - 1] = 3
            at += n
        return np.array([positions[s] for s in starts], dtype="int32")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_jieba"] = None
        state["_decoder"] = state["_decoder_of"] = None
        state["_pretrained_weights"] = {}  # only needed while fit builds the network
        state["_lexicon_word_weights"] = None  # (the network holds them)
        return state

    # -- the network ------------------------------------------------------------------------
    def _tagger_optimizer(self, steps_per_epoch):
        if not self.learning_rate_decay:
            return self._optimizer()
        optimizer = self._optimizer()
        schedule = keras.optimizers.schedules.InverseTimeDecay(
            self.learning_rate, decay_steps=max(int(steps_per_epoch or 1), 1), decay_rate=self.learning_rate_decay
        )
        config = optimizer.get_config()
        config["learning_rate"] = keras.optimizers.schedules.serialize(schedule)
        return type(optimizer).from_config(config)

    def build(self, input_layer, n_tags: int, constraints=None, initial_weights=None, steps_per_epoch=None, member=None, seed=None):
        """Build and compile the Keras model.

        Args:
            input_layer: the vectorizer's layer mapping token ids to vectors.
            n_tags: number of tags.
            constraints: ``(transitions, start, end)`` 0/1 arrays of the allowed CRF moves
                (see ``stages.tag_schemes.allowed_transitions``), used when
                ``crf_constraints`` is on.
            initial_weights: pretrained embedding matrix for ``input_layer``, or None.
            steps_per_epoch: training batches per epoch (for ``learning_rate_decay``).
            member: with ``ensemble`` > 1, the index of the member being built (it names the
                network ``member_<index + 1>``); ``combine`` then joins the trained members.
            seed: the training seed; it draws the random rows (items without a pretrained
                vector) of the ``bigram_pretrained`` / ``lexicon_pretrained`` start matrices.
        """
        inputs = {"token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids")}
        ids = inputs["token_ids"]
        parts = [input_layer(TokenDropout(self.token_dropout, name="token_dropout")(ids) if self.token_dropout else ids)]
        if self.char_features != "none":
            inputs["char_ids"] = keras.Input(shape=(None, None), dtype="int32", name="char_ids")
            encoder = CharEncoder(len(self.chars_), self.char_dim, self.char_features, self.char_units, self.char_kernel, name="char_encoder")
            parts.append(encoder(inputs["char_ids"]))
        if self.case_features:
            inputs["case_ids"] = keras.Input(shape=(None,), dtype="int32", name="case_ids")
            parts.append(keras.layers.Embedding(len(CASES), self.case_dim, name="case_embedding")(inputs["case_ids"]))
        if self.bigram_features:
            inputs["bigram_ids"] = keras.Input(shape=(None, 2), dtype="int32", name="bigram_ids")
            b = keras.layers.Embedding(len(self.bigrams_), self.bigram_dim, name="bigram_embedding")(inputs["bigram_ids"])
            parts.append(keras.layers.Reshape((-1, 2 * self.bigram_dim), name="bigram_pair")(b))
        if self.word_boundary:
            inputs["boundary_ids"] = keras.Input(shape=(None,), dtype="int32", name="boundary_ids")
            parts.append(keras.layers.Embedding(len(BOUNDARIES), self.boundary_dim, name="boundary_embedding")(inputs["boundary_ids"]))
        if self.lexicon_features:
            width = len(LEXICON_POSITIONS) * (self.lexicon_max_length - 1)
            inputs["lexicon"] = keras.Input(shape=(None, width), dtype="float32", name="lexicon")
            parts.append(inputs["lexicon"])
        if self.uses_lexicon_words:
            slots = len(lexicon_slots(self.lexicon_max_length))
            inputs["lexicon_ids"] = keras.Input(shape=(None, slots), dtype="int32", name="lexicon_ids")
            pooled = LexiconEmbedding(
                len(self.lexicon_words_), self.lexicon_dim, self.lexicon_max_length, self.lexicon_pooling, name="lexicon_embedding"
            )
            parts.append(pooled(inputs["lexicon_ids"]))
        x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="token_features")(parts)
        if self.input_dropout:
            x = keras.layers.Dropout(self.input_dropout, name="input_dropout")(x)
        # The padding mask is given to the recurrent layers explicitly: Keras 3 loses it when
        # Concatenate joins a masked input (the word embeddings) with unmasked ones (features),
        # and the backward direction would then read the padding.
        mask = ops.not_equal(inputs["token_ids"], 0)
        for i in range(self.layers):
            x = self._recurrent(return_sequences=True, name=f"rnn_{i + 1}")(x, mask=mask)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="tagger_dropout")(x)
        scores = keras.layers.Dense(n_tags, name="tag_scores")(x)
        # For a CRF the per-token argmax is not the decoded answer, so its accuracy gets
        # another name; the pipeline logs the decoded tags' dev accuracy as val_accuracy.
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="emission_accuracy" if self.uses_crf else "accuracy")
        if self.uses_crf:
            allowed = {}
            if self.crf_constraints and constraints is not None:
                trans, start, end = constraints
                allowed = {"allowed_transitions": trans, "allowed_start": start, "allowed_end": end}
            out = CRF(n_tags, name="crf", **allowed)(scores)
            model = CRFTaggerModel(inputs, out, name="rnn_crf_tagger" if member is None else f"member_{member + 1}")
            model.compile(optimizer=self._tagger_optimizer(steps_per_epoch), metrics=[accuracy])
        else:
            out = keras.layers.Activation("softmax", name="tag_probs")(scores)
            model = keras.Model(inputs, out, name="rnn_tagger" if member is None else f"member_{member + 1}")
            model.compile(optimizer=self._tagger_optimizer(steps_per_epoch), loss="sparse_categorical_crossentropy", metrics=[accuracy])
        if initial_weights is not None:
            input_layer.set_weights([initial_weights])
        for name, (n_rows, dim, rows) in self._pretrained_weights.items():
            layer = model.get_layer(name)
            getattr(layer, "embedding", layer).set_weights([initial_matrix(n_rows, dim, rows, seed=seed or 0)])
        if self.uses_lexicon_words and self.lexicon_pooling == "frequency":
            if self._lexicon_word_weights is None:
                raise RuntimeError("lexicon_pooling 'frequency' needs the word weights of fit_features; call it before build")
            model.get_layer("lexicon_embedding").set_word_weights(self._lexicon_word_weights)
        self.model_ = model
        return self

    def combine(self, members):
        """Join trained member networks (built with ``member=i``) into one model; it becomes
        ``model_``.

        With a CRF, the joined model's output is the mean of the members' per-token scores,
        followed by a CRF layer (named ``crf``, so decoding and export use it as a single
        tagger's) holding the mean of the members' transition scores: Viterbi then finds the
        tag sequence with the best mean path score. With softmax, the mean probabilities.
        The joined model is not compiled: it only predicts, and cannot be trained on.
        """
        if len(members) != self.ensemble:
            raise ValueError(f"combine got {len(members)} member networks but ensemble is {self.ensemble}")
        if len(members) == 1:
            self.model_ = members[0]
            return self
        first = members[0]
        inputs = {name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=name) for name, t in first.input.items()}
        outputs = [m(inputs) for m in members]
        mean = keras.layers.Average(name="ensemble_mean")(outputs)
        if not self.uses_crf:
            self.model_ = keras.Model(inputs, mean, name="rnn_tagger_ensemble")
            return self
        crfs = [m.crf for m in members]
        config = {k: v for k, v in crfs[0].get_config().items() if k not in ("name", "trainable", "dtype")}
        crf = CRF(name="crf", **config)
        out = crf(mean)
        crf.set_weights([np.mean(ws, axis=0) for ws in zip(*(c.get_weights() for c in crfs))])
        self.model_ = keras.Model(inputs, out, name="rnn_crf_tagger_ensemble")
        return self

    def fit(self, data, validation_data=None, epochs=10, callbacks=(), verbose="auto", initial_epoch=0, **_):
        """Train on ``data``, a Keras ``PyDataset`` of ``(inputs, tag ids, weights)`` batches."""
        self.check_fitted()
        history = self.model_.fit(
            data,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=self._fit_callbacks(callbacks),
            verbose=verbose,
            initial_epoch=initial_epoch,
        )
        self.history_ = history.history
        return self

    def transform(self, batch, batch_size=None):
        """Per-token tag scores for one padded batch (a dict of input arrays)."""
        self.check_fitted()
        return np.asarray(self.model_.predict_on_batch(batch))

    def decode_batch(self, batch) -> dict:
        """Tags for one padded batch, with what entity scores need.

        Returns:
            ``{"tags"}`` plus, for a CRF, ``scores`` (per-token tag scores), ``alpha``, ``beta``
            and ``log_z`` (forward-backward, see ``CRF.forward_backward``); for softmax,
            ``probs``. Viterbi and forward-backward run in a compiled model sharing the CRF.
        """
        self.check_fitted()
        if not self.uses_crf:
            probs = np.asarray(self.model_.predict_on_batch(batch))
            return {"tags": probs.argmax(axis=-1), "probs": probs}
        if getattr(self, "_decoder", None) is None or self._decoder_of is not self.model_:
            from .crf import CRFDecoding

            token_ids = self.model_.input["token_ids"] if isinstance(self.model_.input, dict) else self.model_.input
            outputs = CRFDecoding(self.crf, name="crf_decoding")([self.model_.output, token_ids])
            self._decoder = keras.Model(self.model_.input, outputs, name="crf_decoder")
            self._decoder_of = self.model_
        tags, scores, alpha, beta, log_z = (np.asarray(v) for v in self._decoder.predict_on_batch(batch))
        return {"tags": tags, "scores": scores, "alpha": alpha, "beta": beta, "log_z": log_z}

    @property
    def crf(self) -> CRF:
        return self.model_.get_layer("crf")

    @property
    def is_ensemble(self) -> bool:
        """True once ``model_`` joins several trained members (see ``combine``)."""
        return self.model_ is not None and self.model_.name.endswith("_ensemble")

    # -- persistence ------------------------------------------------------------------------
    def save_assets(self, directory):
        self.check_fitted()
        self.model_.save(os.path.join(directory, "model.keras"))
        if self.chars_ is not None:
            _write_lines(os.path.join(directory, "chars.txt"), self.chars_)
        if self.bigrams_ is not None:
            _write_lines(os.path.join(directory, "bigrams.txt"), self.bigrams_)
        if self.lexicon_ is not None:
            _write_lines(os.path.join(directory, "lexicon.txt"), self.lexicon_)
        if self.lexicon_words_ is not None:
            _write_lines(os.path.join(directory, "lexicon_words.txt"), self.lexicon_words_)
        if self.lexicon_classes_ is not None:
            _write_lines(os.path.join(directory, "lexicon_classes.txt"), self.lexicon_classes_)

    def load_assets(self, directory):
        from . import crf, layers  # noqa: F401  (registers the custom layers before loading)

        if self.char_features != "none":
            self.chars_ = _read_lines(os.path.join(directory, "chars.txt"))
            self._char_index = {c: i for i, c in enumerate(self.chars_)}
        if self.bigram_features:
            self.bigrams_ = _read_lines(os.path.join(directory, "bigrams.txt"))
            self._bigram_index = {b: i for i, b in enumerate(self.bigrams_)}
        if self.lexicon_features:
            classes = _read_lines(os.path.join(directory, "lexicon_classes.txt")) if self.lexicon_pos else None
            self._set_lexicon(_read_lines(os.path.join(directory, "lexicon.txt")), classes)
        if self.uses_lexicon_words:
            self._set_lexicon_words(_read_lines(os.path.join(directory, "lexicon_words.txt")))
        path = os.path.join(directory, "model.keras")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: the saved pipeline's Keras model")
        self.model_ = keras.saving.load_model(path, safe_mode=True)


def _raw(sentence):
    return getattr(sentence, "raw", None) or list(sentence)


def _bigrams(tokens):
    padded = [BIGRAM_EDGE, *tokens, BIGRAM_EDGE]
    return [(padded[i] + padded[i + 1], padded[i + 1] + padded[i + 2]) for i in range(len(tokens))]


@register("decoder", "tags")
class TagDecoder(Stage):
    """Tag ids <-> tag strings, and tags -> entity spans, for taggers.

    The model is trained in ``scheme``; answers give tags in the data's scheme and entities as
    ``{"type", "start", "end", "text", "token_start", "token_end", "score"}`` with ``start`` /
    ``end`` character offsets into the input text (end exclusive) and ``token_start`` /
    ``token_end`` token indices. Ill-formed predicted sequences are read by the conlleval rules
    (``I-X`` after ``O`` starts an entity; see ``stages.tag_schemes``).

    Args:
        scheme: the tag scheme the model learns: ``bio``, ``iob1``, ``bioes`` or ``bmes``
            (BIOES usually learns a little better than BIO).
        include_tags: put the per-token ``tokens`` and ``tags`` in each answer.

    Example:
        >>> d = TagDecoder(scheme="bio").fit([["B-PER", "O"]])
        >>> d.tags_
        ['O', 'B-PER', 'I-PER']
    """

    fitted_attributes = ("tags_",)

    def __init__(self, scheme: str = "bioes", include_tags: bool = True):
        super().__init__()
        self.tags_ = None

    def _validate(self):
        check_choice("scheme", self.scheme, SCHEMES)
        check_bool("include_tags", self.include_tags)

    def fit(self, data):
        """Learn the entity types from tag sequences (any scheme) or a list of type names."""
        types = set()
        for item in data:
            if isinstance(item, str):
                types.add(item)
            else:
                types.update(s.type for s in tags_to_spans(list(item)))
        if not types:
            raise DataError("The training data has no entities at all; a tagger needs at least one entity type")
        self._set_tags(scheme_tags(sorted(types), self.scheme))
        return self

    def _set_tags(self, tags):
        self.tags_ = list(tags)
        self._index = {t: i for i, t in enumerate(self.tags_)}
        self.types_ = sorted({t[2:] for t in self.tags_ if t != OUTSIDE})

    def encode_spans(self, spans, length: int) -> np.ndarray:
        """Tag ids of ``length`` tokens carrying ``spans`` (token ``Span``s of known types)."""
        self.check_fitted()
        return np.array([self._index[t] for t in spans_to_tags(spans, length, self.scheme)], dtype="int32")

    def tags_of(self, ids) -> list[str]:
        self.check_fitted()
        return [self.tags_[int(i)] for i in ids]

    def transform(self, batch):
        return [self.tags_of(ids) for ids in batch]

    def answer(self, sentence, tag_ids, scores, output_scheme: str) -> dict:
        """The answer for one tokenized sentence.

        Args:
            sentence: a ``TokenizedText`` (tokens with ``text``, ``spans`` and ``raw``).
            tag_ids: one predicted tag id per token.
            scores: one confidence per entity of ``tags_to_spans`` of the predicted tags.
            output_scheme: the scheme of the ``tags`` in the answer.
        """
        tags = self.tags_of(tag_ids)
        entities = []
        for span, score in zip(tags_to_spans(tags), scores):
            start, end = sentence.spans[span.start][0], sentence.spans[span.end - 1][1]
            entities.append(
                {
                    "type": span.type,
                    "start": int(start),
                    "end": int(end),
                    "text": sentence.text[start:end],
                    "token_start": span.start,
                    "token_end": span.end,
                    "score": float(score),
                }
            )
        answer = {"text": sentence.text}
        if self.include_tags:
            answer["tokens"] = list(sentence.raw)
            answer["tags"] = convert(tags, self.scheme, output_scheme) if output_scheme != self.scheme else tags
        answer["entities"] = entities
        return answer

    def save_assets(self, directory):
        self.check_fitted()
        _write_lines(os.path.join(directory, "tags.txt"), self.tags_)

    def load_assets(self, directory):
        path = os.path.join(directory, "tags.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: the saved pipeline's tag list")
        self._set_tags(_read_lines(path))


@register("decoder", "entities")
class EntityDecoder(TagDecoder):
    """The ``tags`` decoder with entity-only answers by default (``include_tags: false``).

    Example:
        >>> EntityDecoder().include_tags
        False
    """

    def __init__(self, scheme: str = "bioes", include_tags: bool = False):
        Stage.__init__(self)  # Stage reads this frame's arguments, so skip TagDecoder.__init__
        self.tags_ = None


def _round_up(n: int, step: int | None = None) -> int:
    # JAX compiles the training step once per batch shape, so there the lengths go up in
    # coarser steps (fewer shapes, more padding); TensorFlow runs unseen shapes without a
    # long compile.
    step = step or (32 if keras.backend.backend() == "jax" else 8)
    return max(step, -(-n // step) * step)


class TaggingBatches(keras.utils.PyDataset):
    """Length-bucketed, padded batches of tagged sentence pieces (a Keras ``PyDataset``).

    Sentences of similar length share a batch and each batch is padded (after the tokens) to
    its longest piece rounded up to a multiple of 8 (32 on JAX, which compiles each shape), so
    little time goes into padding and the compiled step sees few distinct shapes. With
    ``shuffle`` the batches are re-drawn each epoch.

    Yields ``(inputs, tag ids, token weights)`` (or only ``inputs`` without targets), where
    ``inputs`` is a dict of the model's input arrays and the weights are 1 on real tokens.
    """

    def __init__(self, items, input_names, batch_size: int, shuffle: bool = True, seed: int = 0, with_targets: bool = True):
        super().__init__()
        self.items = items
        self.input_names = list(input_names)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.with_targets = with_targets
        self._rng = np.random.default_rng(seed)
        self.lengths = np.array([len(it["token_ids"]) for it in items], dtype="int64")
        self._make_batches()

    def _make_batches(self):
        n = len(self.items)
        if self.shuffle:
            keys = self.lengths + self._rng.uniform(-2.0, 2.0, size=n)
            order = np.argsort(keys, kind="stable")
        else:
            order = np.argsort(self.lengths, kind="stable")
        self.batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.shuffle:
            self._rng.shuffle(self.batches)

    def __len__(self):
        return len(self.batches)

    def _shape(self, index):
        chosen = [self.items[j] for j in self.batches[index]]
        length = _round_up(max(len(it["token_ids"]) for it in chosen))
        width = max((it["char_ids"].shape[1] for it in chosen), default=1) if "char_ids" in self.input_names else 0
        return length, width

    def __getitem__(self, index):
        chosen = [self.items[j] for j in self.batches[index]]
        length, width = self._shape(index)
        if index == 0 and len(self.batches) > 1 and keras.backend.backend() == "tensorflow":
            # Keras' TensorFlow adapter fixes every non-batch dimension that is equal in the
            # first two batches; make them differ so time and word length stay variable. (JAX
            # takes any shape, and there an extra one would only cost another compile.)
            other = self._shape(1)
            length += 8 if length == other[0] else 0
            width += 1 if width == other[1] else 0
        inputs = {}
        for name in self.input_names:
            if name == "char_ids":
                arr = np.zeros((len(chosen), length, width), dtype="int32")
                for r, it in enumerate(chosen):
                    a = it[name]
                    arr[r, : a.shape[0], : a.shape[1]] = a
            elif chosen[0][name].ndim == 2:  # a vector per token (bigram ids, lexicon features)
                first = chosen[0][name]
                arr = np.zeros((len(chosen), length, first.shape[1]), dtype=first.dtype)
                for r, it in enumerate(chosen):
                    arr[r, : len(it[name])] = it[name]
            else:
                arr = np.zeros((len(chosen), length), dtype="int32")
                for r, it in enumerate(chosen):
                    arr[r, : len(it[name])] = it[name]
            inputs[name] = arr
        if not self.with_targets:
            return inputs
        y = np.zeros((len(chosen), length), dtype="int32")
        w = np.zeros((len(chosen), length), dtype="float32")
        for r, it in enumerate(chosen):
            y[r, : len(it["y"])] = it["y"]
            w[r, : len(it["y"])] = 1.0
        return inputs, y, w

    def on_epoch_end(self):
        if self.shuffle:
            self._make_batches()


class EpochEndScorer(keras.callbacks.Callback):
    """Adds the figures of ``score()`` (a dict) to the logs at the end of every epoch.

    Put it first in the callback list so early stopping, checkpoints and the CSV log see them.

    Args:
        score: a function returning ``{name: value}``.
        maximize: names among the figures for which higher is better.
    """

    def __init__(self, score, maximize=()):
        super().__init__()
        self.score = score
        self.maximize = tuple(maximize)

    def set_modes(self, callbacks):
        """Set ``mode="max"`` on callbacks (early stopping, checkpoints) that watch one of the
        ``maximize`` figures with ``mode="auto"``: Keras infers the direction only for metrics
        the model itself computes, and refuses a figure this callback writes."""
        for callback in callbacks:
            if getattr(callback, "monitor", None) in self.maximize and getattr(callback, "mode", None) == "auto":
                callback.mode = "max"

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.score())
