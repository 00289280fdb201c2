"""The tagger's token features, one plug-in per family.

``rnn_tagger`` reads one vector per token from the vectorizer and, for every feature family
named under its ``features`` option, more inputs, each learned from the training tokens and
saved as plain files beside the model:

```yaml
model:
  type: rnn_tagger
  features:
    chars: {kind: cnn, dim: 25, units: 25}     # a vector per word from its characters
    shape: {dim: 8}                            # lower / Title / UPPER / digits / ...
    bigrams: {dim: 50, min_freq: 1}            # the bigrams left and right of each token
    word_boundary: {dim: 20}                   # a character's place (B/M/E/S) in its jieba word
    lexicon: {max_length: 4, dim: 50}          # the dictionary words covering each character
```

A family is a ``TokenFeature``: its options (validated at construction, errors naming
``features.<family>.<option>``), ``fit`` (learn from the training sentences), ``arrays`` (the
model inputs of one sentence), ``inputs`` / ``vectors`` (its Keras inputs and the vector part
they give each token), ``save_assets`` / ``load_assets``, and a TensorFlow counterpart in
``pipeline/export/tagging_features.py`` (the same computation in the exported graph). The
families are concatenated in the order of ``families.FEATURES``; ``lexicon`` lives in
``stages.tagging.lexicon`` with its helpers.
"""

from __future__ import annotations

import copy
import logging
import os
import unicodedata
from collections import Counter

import keras
import numpy as np
from keras import ops

from ..base import check_choice, check_int, check_str
from ..crf import PACKAGE
from ..errors import ConfigError, unknown_key_error
from ..vectorizers import read_vectors
from ..base import write_asset_lines
from .assets import read_lines

log = logging.getLogger("ktp")

#: Ids of the word-shape feature (0 is padding).
CASES = ("<pad>", "digits", "has_digit", "upper", "title", "lower", "mixed", "other")
#: Ids of the word-boundary feature: a character's position in its jieba word.
BOUNDARIES = ("<pad>", "B", "M", "E", "S")
FEATURE_PAD, FEATURE_UNK = "<pad>", "<unk>"
BIGRAM_EDGE = "<s>"


def feature_vocab(counts: Counter, min_freq: int, reserved=(), extra=()) -> list[str]:
    """``<pad>``, ``<unk>``, ``reserved``, then the items counted at least ``min_freq`` times
    and the ``extra`` ones (kept whatever their count), most frequent first."""
    kept = sorted({t for t, c in counts.items() if c >= min_freq} | set(extra), key=lambda t: (-counts[t], t))
    return [FEATURE_PAD, FEATURE_UNK, *reserved, *kept]


def raw_tokens(sentence) -> list[str]:
    """The tokens of a sentence as written (``TokenizedText.raw``), or the tokens themselves."""
    return getattr(sentence, "raw", None) or list(sentence)


def bigrams(tokens) -> list[tuple[str, str]]:
    """The bigram to the left and to the right of each token (``<s>`` at the edges)."""
    padded = [BIGRAM_EDGE, *tokens, BIGRAM_EDGE]
    return [(padded[i] + padded[i + 1], padded[i + 1] + padded[i + 2]) for i in range(len(tokens))]


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


def read_pretrained(path: str | None, dim: int, wanted, option: str) -> dict:
    """The vectors of the ``wanted`` items in the vectors file ``path`` ({} when None)."""
    if path is None:
        return {}
    if not os.path.isfile(path):
        raise ConfigError(option, "must be the path of an existing vectors file (word2vec text or binary, GloVe, fastText .vec)", path)
    vectors, found = read_vectors(path, "auto", set(wanted))
    if found != dim:
        raise ConfigError(option.rsplit(".", 1)[0] + ".dim", f"must match the {found}-dimensional vectors in {path}", dim)
    return vectors


class TokenFeature:
    """Base of the feature families (see the module docstring).

    Args:
        options: the family's options (defaults filled in from ``OPTIONS``).
        path: where the options sit in the config, for error messages.
    """

    #: The key under ``features``.
    name = ""
    #: option -> (default, validator(name, value)).
    OPTIONS: dict = {}
    #: The feature needs one token per character (a ``char`` tokenizer).
    needs_char_tokenizer = False

    def __init__(self, options=None, path: str = ""):
        options = {} if options is None else options
        self.where = path or f"features.{self.name}"
        if not isinstance(options, dict):
            raise ConfigError("", "must be a mapping of options (or empty: {})", options, self.where)
        for key in options:
            if key not in self.OPTIONS:
                raise unknown_key_error(str(key), self.OPTIONS, self.where)
        #: Every option, defaults filled in; each is also an attribute of the same name.
        self.options = {key: copy.deepcopy(options.get(key, default)) for key, (default, _) in self.OPTIONS.items()}
        for key, value in self.options.items():
            setattr(self, key, value)
        try:
            for key, (_, check) in self.OPTIONS.items():
                check(key, self.options[key])
            self.check()
        except ConfigError as err:
            raise err.under(self.where) from None
        #: Keras layer name -> (what, rows, dim, {row: pretrained vector}): pretrained start
        #: matrices found by ``fit``, drawn in ``RNNTagger.build`` (not pickled).
        self.start_matrices = {}

    def check(self) -> None:
        """Check options against each other (after each was checked alone)."""

    @property
    def input_names(self) -> list[str]:
        """The model inputs this feature feeds, in order."""
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return True

    def fit(self, sentences, normalize=None) -> None:
        """Learn from the training sentences (``TokenizedText`` objects)."""

    def arrays(self, sentence) -> dict:
        """The model inputs of one tokenized sentence, unpadded numpy arrays by input name."""
        raise NotImplementedError

    def inputs(self) -> dict:
        """The Keras inputs of this feature, by name."""
        raise NotImplementedError

    def vectors(self, inputs: dict) -> list:
        """The tensors this feature adds to each token's vector, from its Keras ``inputs``."""
        raise NotImplementedError

    def after_build(self, model) -> None:
        """Set weights that come from the training data once the model is built."""

    def assets(self) -> dict:
        """Plain-text state: file name -> its lines (also written into the SavedModel)."""
        return {}

    def save_assets(self, directory: str) -> None:
        for name, items in self.assets().items():
            write_asset_lines(os.path.join(directory, name), items, what="feature")

    def load_assets(self, directory: str) -> None:
        """Read the state written by ``save_assets``."""

    def __getstate__(self):
        # Only needed while fit builds the network (the network then holds them).
        return {**self.__dict__, "start_matrices": {}}



def positive_int(minimum=1):
    return lambda n, v: check_int(n, v, minimum=minimum)


class VocabFeature(TokenFeature):
    """A feature family with a vocabulary of its own (characters, bigrams): the items ``fit``
    keeps sit in the attribute named by ``vocab_attr`` (id = position), are written to
    ``vocab_file``, and ``_index`` maps each back to its id."""

    #: The fitted attribute that holds the items, e.g. ``"chars_"``.
    vocab_attr = ""
    #: The asset file of the items, one a line.
    vocab_file = ""

    def __init__(self, options=None, path=""):
        super().__init__(options, path)
        setattr(self, self.vocab_attr, None)

    @property
    def is_fitted(self):
        return getattr(self, self.vocab_attr) is not None

    def _set(self, items):
        items = list(items)
        setattr(self, self.vocab_attr, items)
        self._index = {item: i for i, item in enumerate(items)}

    def assets(self):
        return {self.vocab_file: getattr(self, self.vocab_attr)}

    def load_assets(self, directory):
        self._set(read_lines(os.path.join(directory, self.vocab_file)))


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


class Chars(VocabFeature):
    """``chars``: a vector per word from its characters (a char CNN with max-pooling, or a
    char BiLSTM), for English words the vocabulary has never seen. Options: ``kind`` cnn |
    lstm, ``dim`` (character embedding size), ``units`` (CNN filters or BiLSTM units per
    direction), ``kernel`` (CNN width), ``max_length`` (characters kept per word: the first
    and last halves of longer words), ``min_freq`` (rarer characters map to ``<unk>``)."""

    name = "chars"
    OPTIONS = {
        "kind": ("cnn", lambda n, v: check_choice(n, v, ("cnn", "lstm"))),
        "dim": (25, positive_int()), "units": (25, positive_int()), "kernel": (3, positive_int()),
        "max_length": (20, positive_int(2)), "min_freq": (1, positive_int()),
    }

    input_names = ["char_ids"]
    vocab_attr, vocab_file = "chars_", "chars.txt"

    def fit(self, sentences, normalize=None):
        self._set(feature_vocab(Counter(c for s in sentences for tok in raw_tokens(s) for c in tok), self.min_freq))

    def arrays(self, sentence):
        n, rows = self.max_length, []
        for tok in raw_tokens(sentence):
            if len(tok) > n:
                tok = tok[: n // 2] + tok[len(tok) - (n - n // 2):]
            rows.append([self._index.get(c, 1) for c in tok])
        width = max((len(r) for r in rows), default=1) or 1
        arr = np.zeros((len(rows), width), dtype="int32")
        for i, r in enumerate(rows):
            arr[i, : len(r)] = r
        return {"char_ids": arr}

    def inputs(self):
        return {"char_ids": keras.Input(shape=(None, None), dtype="int32", name="char_ids")}

    def vectors(self, inputs):
        encoder = CharEncoder(len(self.chars_), self.dim, self.kind, self.units, self.kernel, name="char_encoder")
        return [encoder(inputs["char_ids"])]



class Shape(TokenFeature):
    """``shape``: the word's shape (``CASES``: lower, Title, UPPER, digits, ...), which keeps
    capitalisation when the vocabulary lowercases. Option: ``dim``."""

    name = "shape"
    OPTIONS = {"dim": (8, positive_int())}
    input_names = ["case_ids"]

    def arrays(self, sentence):
        return {"case_ids": np.array([word_shape(t) for t in raw_tokens(sentence)], dtype="int32")}

    def inputs(self):
        return {"case_ids": keras.Input(shape=(None,), dtype="int32", name="case_ids")}

    def vectors(self, inputs):
        return [keras.layers.Embedding(len(CASES), self.dim, name="case_embedding")(inputs["case_ids"])]


class Bigrams(VocabFeature):
    """``bigrams``: embeddings of the token bigrams left and right of each token (character
    bigrams for character-level Chinese). Options: ``dim``, ``min_freq`` (rarer bigrams map to
    ``<unk>``), ``pretrained`` (a vectors file, ``dim`` values each, whose vectors start the
    embeddings; a rare bigram the file has keeps a row of its own; read in ``fit`` only)."""

    name = "bigrams"
    OPTIONS = {
        "dim": (50, positive_int()), "min_freq": (1, positive_int()),
        "pretrained": (None, lambda n, v: check_str(n, v, allow_none=True)),
    }
    input_names = ["bigram_ids"]
    vocab_attr, vocab_file = "bigrams_", "bigrams.txt"

    def fit(self, sentences, normalize=None):
        counts = Counter(b for s in sentences for pair in bigrams(list(s)) for b in pair)
        vectors = read_pretrained(self.pretrained, self.dim, counts, f"{self.where}.pretrained")
        self._set(feature_vocab(counts, self.min_freq, reserved=(BIGRAM_EDGE,), extra=vectors))
        self.start_matrices = {}
        if self.pretrained is not None:
            rows = {i: vectors[t] for i, t in enumerate(self.bigrams_) if i >= 1 and t in vectors}
            self.start_matrices = {"bigram_embedding": ("bigram", len(self.bigrams_), self.dim, rows)}
            log.info("Pretrained vectors start %d of the %d bigram vectors", len(rows), len(self.bigrams_))

    def arrays(self, sentence):
        index = self._index
        pairs = [[index.get(left, 1), index.get(right, 1)] for left, right in bigrams(list(sentence))]
        return {"bigram_ids": np.array(pairs, dtype="int32").reshape(len(sentence), 2)}

    def inputs(self):
        return {"bigram_ids": keras.Input(shape=(None, 2), dtype="int32", name="bigram_ids")}

    def vectors(self, inputs):
        b = keras.layers.Embedding(len(self.bigrams_), self.dim, name="bigram_embedding")(inputs["bigram_ids"])
        return [keras.layers.Reshape((-1, 2 * self.dim), name="bigram_pair")(b)]



class WordBoundary(TokenFeature):
    """``word_boundary``: each character's position (B/M/E/S) in the jieba word that contains
    it (the "softword" feature; jieba's default dictionary with its HMM, cutting the
    sentence's tokens joined). Option: ``dim``. The export runs jieba in the graph."""

    name = "word_boundary"
    OPTIONS = {"dim": (20, positive_int())}
    needs_char_tokenizer = True
    input_names = ["boundary_ids"]

    def __init__(self, options=None, path=""):
        super().__init__(options, path)
        self._jieba = None

    def segmenter(self):
        """jieba's default tokenizer, loaded once (not pickled with the stage)."""
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._jieba = jieba.Tokenizer()
            self._jieba.initialize()
        return self._jieba

    def arrays(self, sentence):
        tokens = list(sentence)
        # Each token's first character decides its position in the jieba word around it.
        starts, pos = [], 0
        for tok in tokens:
            starts.append(pos)
            pos += len(tok)
        positions = np.zeros(pos, dtype="int32")
        at = 0
        for word in self.segmenter().cut("".join(tokens), HMM=True):
            n = len(word)
            if n == 1:
                positions[at] = 4
            else:
                positions[at] = 1
                positions[at + 1: at + n - 1] = 2
                positions[at + n - 1] = 3
            at += n
        return {"boundary_ids": np.array([positions[s] for s in starts], dtype="int32")}

    def inputs(self):
        return {"boundary_ids": keras.Input(shape=(None,), dtype="int32", name="boundary_ids")}

    def vectors(self, inputs):
        return [keras.layers.Embedding(len(BOUNDARIES), self.dim, name="boundary_embedding")(inputs["boundary_ids"])]

    def __getstate__(self):
        return {**super().__getstate__(), "_jieba": None}
