"""Tokenizer stages: jieba (Chinese words), nltk (English words), char, whitespace.

Every tokenizer shares two normalisation options applied before splitting: ``nfkc`` (Unicode
NFKC, so full-width letters, digits and punctuation become their half-width forms) and
``lowercase``, both applied one character at a time (``stages.normalization``: the exported
SavedModel uses the very same table). ``transform(texts)`` returns one list of string tokens
per text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil

from .errors import ConfigError
from .registry import register

from .base import Stage, check_bool, check_choice, check_str, check_str_list
from .normalization import normalize


#: A run of characters that are not whitespace (``re``'s ``\\s`` is ``str.isspace``).
_NON_SPACE_RUN = re.compile(r"\S+")


class Tokenizer(Stage):
    """Base of the tokenizer stages: normalisation plus ``tokenize`` of one text."""

    def normalize(self, text: str) -> str:
        """NFKC and / or lower-casing, character by character (``stages.normalization``)."""
        return normalize(text, self.nfkc, self.lowercase)

    def tokenize(self, text: str) -> list[str]:
        """Split one text into tokens (after normalisation)."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__} expects str texts, got {type(text).__name__}")
        return self._split(self.normalize(text))

    def _split(self, text: str) -> list[str]:
        raise NotImplementedError

    def transform(self, batch):
        """Tokenize a list of texts into a list of token lists."""
        return [self.tokenize(t) for t in batch]

    def split_spans(self, text: str) -> list[tuple[str, int, int]]:
        """Split an already normalised ``text`` into ``(token, start, end)``: each token with
        its character offsets in ``text`` (end exclusive). The exported graph computes the same.

        This default finds each token after the previous one; a token the tokenizer rewrote is
        placed on the next characters of its length.
        """
        out, pos = [], 0
        for tok in self._split(text):
            if not tok:
                continue
            j = text.find(tok, pos)
            if j < 0:
                j = pos
                while j < len(text) and text[j].isspace():
                    j += 1
            k = min(j + len(tok), len(text))
            out.append((tok, j, k))
            pos = k
        return out

    def fingerprint(self) -> str:
        """A short hash of the settings (and user dictionaries) that decide the tokens."""
        h = hashlib.sha256(repr(sorted(self.get_config().items())).encode())
        return h.hexdigest()[:16]


@register("tokenizer", "whitespace")
class WhitespaceTokenizer(Tokenizer):
    """Splits on runs of whitespace.

    Example:
        >>> WhitespaceTokenizer(lowercase=True).tokenize("Hello  World")
        ['hello', 'world']
    """

    def __init__(self, lowercase: bool = False, nfkc: bool = True):
        super().__init__()

    def _validate(self):
        check_bool("lowercase", self.lowercase)
        check_bool("nfkc", self.nfkc)

    def _split(self, text):
        return text.split()

    def split_spans(self, text):
        return [(m.group(), m.start(), m.end()) for m in _NON_SPACE_RUN.finditer(text)]


@register("tokenizer", "char")
class CharTokenizer(Tokenizer):
    """One token per Unicode character; whitespace is dropped.

    Args:
        keep_alnum_runs: keep runs of ASCII Latin letters and digits together as one token
            (after NFKC, full-width letters and digits count too), so ``"iPhone12很好"`` gives
            ``["iPhone12", "很", "好"]``.
        lowercase: lower-case before splitting.
        nfkc: apply Unicode NFKC normalisation before splitting.

    Example:
        >>> CharTokenizer().tokenize("好 看!")
        ['好', '看', '!']
    """

    ALNUM_PATTERN = r"[A-Za-z0-9]+|\S"

    def __init__(self, keep_alnum_runs: bool = False, lowercase: bool = False, nfkc: bool = True):
        super().__init__()
        self._alnum = re.compile(self.ALNUM_PATTERN)

    def _validate(self):
        check_bool("keep_alnum_runs", self.keep_alnum_runs)
        check_bool("lowercase", self.lowercase)
        check_bool("nfkc", self.nfkc)

    def _split(self, text):
        if self.keep_alnum_runs:
            return self._alnum.findall(text)
        return [c for c in text if not c.isspace()]

    def split_spans(self, text):
        if self.keep_alnum_runs:
            return [(m.group(), m.start(), m.end()) for m in self._alnum.finditer(text)]
        return [(c, i, i + 1) for i, c in enumerate(text) if not c.isspace()]


@register("tokenizer", "nltk")
class NLTKTokenizer(Tokenizer):
    """English word tokenizers from nltk that need no downloaded nltk data.

    Args:
        method: ``word`` (NLTKWordTokenizer, the improved Treebank rules used by
            ``nltk.word_tokenize``, without its punkt sentence splitting), ``treebank``,
            ``wordpunct``, ``tweet`` or ``regexp``.
        pattern: the token regex for ``method: regexp``.
        lowercase: lower-case before splitting.
        nfkc: apply Unicode NFKC normalisation before splitting.

    Example:
        >>> NLTKTokenizer(lowercase=True).tokenize("It's great, isn't it?")
        ['it', "'s", 'great', ',', 'is', "n't", 'it', '?']
    """

    METHODS = ("word", "treebank", "wordpunct", "tweet", "regexp")

    def __init__(
        self, method: str = "word", pattern: str | None = None, lowercase: bool = False, nfkc: bool = True
    ):
        super().__init__()
        self._impl = None

    def _validate(self):
        check_choice("method", self.method, self.METHODS)
        if self.method == "regexp":
            check_str("pattern", self.pattern)
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ConfigError("pattern", f"must be a valid regular expression ({err})", self.pattern)
        elif self.pattern is not None:
            raise ConfigError("pattern", "is only used with method: regexp; remove it", self.pattern)
        check_bool("lowercase", self.lowercase)
        check_bool("nfkc", self.nfkc)

    def _tokenizer(self):
        if self._impl is None:
            from nltk import tokenize as nt

            self._impl = {
                "word": nt.NLTKWordTokenizer,
                "treebank": nt.TreebankWordTokenizer,
                "wordpunct": nt.WordPunctTokenizer,
                "tweet": nt.TweetTokenizer,
                "regexp": lambda: nt.RegexpTokenizer(self.pattern),
            }[self.method]()
        return self._impl

    def _split(self, text):
        return self._tokenizer().tokenize(text)

    def split_spans(self, text):
        if self.method == "tweet":
            return super().split_spans(text)
        tokens = self._split(text)
        return [(t, a, b) for t, (a, b) in zip(tokens, nltk_token_spans(self.method, text, tokens, self.pattern))]

    def __getstate__(self):
        # Worker processes rebuild the nltk object lazily.
        state = dict(self.__dict__)
        state["_impl"] = None
        return state


#: The flags nltk's ``RegexpTokenizer`` compiles its pattern with (``regex`` engine).
NLTK_REGEXP_FLAGS = re.UNICODE | re.MULTILINE | re.DOTALL
#: ``WordPunctTokenizer``'s pattern.
WORDPUNCT_PATTERN = r"\w+|[^\w\s]+"


def nltk_token_spans(method: str, text: str, tokens: list, pattern: str | None = None) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each nltk token of ``text`` (end exclusive), in linear time;
    the exported graph (``pipeline.export.nltk_graph``) computes the same.

    - ``wordpunct`` / ``regexp``: the span of each whole match (as nltk's ``span_tokenize``,
      also when the token is a capturing group).
    - ``word`` / ``treebank``: their rules never drop or reorder a non-space character and only
      rewrite ``"`` into a two-character quote token (`````` ``` or ``''``). So the tokens walk
      the text's non-space characters in order, each covering ``len(token)`` of them, one fewer
      for a quote token made from ``"``.

    Raises:
        ValueError: ``tokens`` cannot be the tokens of ``text`` (or ``method`` has no rule).
    """
    if method in ("word", "treebank"):
        index = [i for i, c in enumerate(text) if not c.isspace()]
        out, s = [], 0
        for tok in tokens:
            if s >= len(index):
                raise ValueError(f"token {tok!r} lies beyond the end of the text")
            n = len(tok) - (text[index[s]] == '"')
            if n <= 0 or s + n > len(index):
                raise ValueError(f"token {tok!r} does not fit the text at {index[s]}")
            out.append((index[s], index[s + n - 1] + 1))
            s += n
        if s != len(index):
            raise ValueError("the tokens do not cover every non-space character of the text")
        return out
    if method not in ("wordpunct", "regexp"):
        raise ValueError(f"nltk method {method!r} has no span rule")
    if method == "regexp" and pattern is None:
        raise ValueError("nltk_token_spans(method='regexp') needs the pattern")
    import regex

    found = [m.span() for m in regex.finditer(WORDPUNCT_PATTERN if method == "wordpunct" else pattern, text, NLTK_REGEXP_FLAGS)]
    if len(found) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(found)} matches in the text")
    return found


@register("tokenizer", "jieba")
class JiebaTokenizer(Tokenizer):
    """Chinese word segmentation with jieba.

    Args:
        mode: ``accurate`` (default; ``jieba.cut``), ``full`` (every dictionary word, overlapping)
            or ``search`` (accurate, plus the shorter words inside long ones).
        hmm: use jieba's HMM to find words missing from its dictionary.
        user_dict: path of a jieba user dictionary (``word [freq] [tag]`` per line); a copy is
            saved with the pipeline so a loaded pipeline does not need the original file.
        extra_words: words to add to the dictionary.
        lowercase: lower-case before segmenting.
        nfkc: apply Unicode NFKC normalisation (full-width to half-width) before segmenting.

    Example:
        >>> JiebaTokenizer().tokenize("我来到北京清华大学")
        ['我', '来到', '北京', '清华大学']
    """

    MODES = ("accurate", "full", "search")

    def __init__(
        self,
        mode: str = "accurate",
        hmm: bool = True,
        user_dict: str | None = None,
        extra_words: list[str] = (),
        lowercase: bool = False,
        nfkc: bool = True,
    ):
        super().__init__()
        self._jieba = None
        self._user_dict_path = user_dict

    def _validate(self):
        check_choice("mode", self.mode, self.MODES)
        check_bool("hmm", self.hmm)
        # Existence is checked in fit(): a loaded pipeline reads its saved copy instead.
        check_str("user_dict", self.user_dict, allow_none=True)
        check_str_list("extra_words", self.extra_words)
        check_bool("lowercase", self.lowercase)
        check_bool("nfkc", self.nfkc)

    def segmenter(self):
        """The ``jieba.Tokenizer`` this stage cuts with (its dictionary, user dictionary and
        extra words loaded); the SavedModel export reads its dictionary from here."""
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tk = jieba.Tokenizer()
            tk.initialize()
            if self._user_dict_path:
                tk.load_userdict(self._user_dict_path)
            for word in self.extra_words:
                tk.add_word(word)
            self._jieba = tk
        return self._jieba

    def fit(self, data=None):
        if self._user_dict_path and not os.path.isfile(self._user_dict_path):
            raise ConfigError("user_dict", "must be the path of an existing file", self.user_dict)
        return self

    def _split(self, text):
        tk = self.segmenter()
        if self.mode == "search":
            words = tk.cut_for_search(text, HMM=self.hmm)
        else:
            words = tk.cut(text, cut_all=self.mode == "full", HMM=self.hmm)
        return [w for w in words if w.strip()]

    def split_spans(self, text):
        if self.mode != "accurate":
            return super().split_spans(text)
        # Accurate mode's words tile the text: offsets are running sums.
        out, pos = [], 0
        for word in self.segmenter().cut(text, HMM=self.hmm):
            if word.strip():
                out.append((word, pos, pos + len(word)))
            pos += len(word)
        return out

    def fingerprint(self) -> str:
        h = hashlib.sha256(super().fingerprint().encode())
        if self._user_dict_path:
            with open(self._user_dict_path, "rb") as f:
                h.update(f.read())
        return h.hexdigest()[:16]

    def save_assets(self, directory):
        if self._user_dict_path:
            shutil.copyfile(self._user_dict_path, os.path.join(directory, "user_dict.txt"))

    def load_assets(self, directory):
        path = os.path.join(directory, "user_dict.txt")
        if self.user_dict is not None:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing: the saved pipeline's jieba user dictionary")
            self._user_dict_path = path
            self._jieba = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_jieba"] = None
        return state
