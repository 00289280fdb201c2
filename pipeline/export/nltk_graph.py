"""nltk's English word tokenizers rebuilt from stock TensorFlow ops, exact or refused.

``GraphNLTK(method, pattern)`` splits a 1-D ``tf.string`` batch (valid UTF-8, already normalised)
inside a TensorFlow graph into exactly the tokens of the Python tokenizer that ``NLTKTokenizer``
uses, with code-point offsets; a method or pattern that cannot be reproduced exactly raises
:class:`UnsupportedInGraph` at construction instead of exporting something silently different.

- ``word`` (``NLTKWordTokenizer``) and ``treebank`` (``TreebankWordTokenizer``, defaults: no
  ``convert_parentheses``): nltk's fixed sequence of ``sub`` rules, each run as one RE2 global
  replace (the same leftmost-first, non-overlapping scan of the step's input that Python's
  ``sub`` does), then ``str.split()``. The constructor checks that the installed nltk's rules are
  exactly the ones translated here. Where RE2 lacks a construct, it is emulated and the
  emulation is argued exact in the comments beside it:

  * character classes (``\\w \\d \\s``, ``[^...]``, letters under ``(?i)``) are explicit classes
    enumerated with the engine that nltk uses for that rule (``regex`` via ``nltk.redos``, or
    stdlib ``re`` for the MacIntyre contractions);
  * ``$`` (end, or before a final newline) becomes ``\\z`` where the match provably always runs
    to the end, or ``(\\n?)\\z`` with the newline put back;
  * the possessive ``*+`` of the first final-period rule is replaced by ``*`` (same matches);
  * the opening-quote rule with look-arounds is computed with vectorised code-point masks;
  * ``\\b`` / ``(?=\\s)`` of the contractions consume the context character and put it back;
    that misses a match whose context was consumed by its neighbour's, so each contraction
    rule runs twice; the second pass finds exactly those (for the two `` ('t)(is|was)`` rules,
    which start with a literal space, it also demands the space that the first pass's rewrite
    put before them, see ``_contraction_rules``).

- ``wordpunct`` (``\\w+|[^\\w\\s]+``) and ``regexp`` (``RegexpTokenizer(pattern)``): the pattern is
  translated to RE2 by :mod:`pipeline.export.regex_graph` and ``findall`` is rebuilt with one
  ``regex_replace`` that brackets the matches. One capturing group is reproduced like
  ``findall`` does (the token is the group, ``''`` when it did not take part); more are refused.
- ``tweet`` is refused.

Offsets (end exclusive, code points of the input):

- ``wordpunct`` / ``regexp``: the span of each whole match (as nltk's ``span_tokenize``), also
  when the token is the capturing group.
- ``word`` / ``treebank``: the rules never drop or reorder a non-whitespace character and only
  rewrite ``"`` (to the two-character token ````` or ``''``) and ``''`` (to `````, same length).
  With S the input without its ``str.isspace()`` characters and D(s) the number of ``"`` in
  ``S[:s]``, token k whose tokens before it have t_k characters starts at the S position s_k with
  ``s_k + D(s_k) == t_k`` and covers ``len(token) - [S[s_k] == '"']`` characters of S; S positions
  map back to input positions. :func:`token_spans` computes the same in Python. (The tests
  check on every row that each offset covers the token, or the ``"`` / ``''`` it came from.)
"""

from __future__ import annotations

import functools
import re

from stages.tokenizers import WORDPUNCT_PATTERN
from stages.tokenizers import nltk_token_spans as token_spans  # noqa: F401  (the Python twin of segment)

from .regex_graph import (
    TOKENIZER_FLAGS,
    UnsupportedInGraph,
    boundaries,
    char_ranges,
    check_re2,
    findall_graph,
    in_set,
    ranges_of,
    re2_class,
    re2_literal,
    render_class,
    row_exclusive_cumsum,
    translate_findall,
)

__all__ = ["GraphNLTK", "UnsupportedInGraph", "token_spans"]

METHODS = ("word", "treebank", "wordpunct", "tweet", "regexp")
_QUOTE = "quote-mask"  # the look-around rule of NLTKWordTokenizer.STARTING_QUOTES
_PAD = "pad"  # text = " " + text + " "


@functools.lru_cache(maxsize=1)
def _isspace() -> tuple:
    """The ``str.isspace()`` characters (``str.split()``'s separators) as ranges."""
    return ranges_of(c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c).isspace())


def _tf():
    import tensorflow as tf

    return tf


def _rx(item: str, flags: int = 0) -> str:
    """RE2 class of a single-character item under the regex engine (nltk.redos)."""
    return re2_class("regex", item, flags)


def _ci(text: str) -> str:
    """``text`` under stdlib ``re`` with IGNORECASE, one enumerated class per character."""
    return "".join(re2_class("re", re.escape(c), re.IGNORECASE) for c in text)


_L = re2_literal
NEWLINE, QUOTE_SPACE = "\n", "' "


# ----------------------------------------------------------------------------------------------
# The rules: (nltk pattern, nltk replacement) beside the RE2 (pattern, rewrite) that reproduce it.


def _starting_quotes(word: bool) -> list:
    rules = []
    if word:
        rules.append((("([«“‘„]|[`]+)", r" \1 "), (f"({_rx('[«“‘„]')}|{_L('`')}+)", r" \1 ")))
    rules += [
        # ^ without MULTILINE: the start of the text only.
        ((r"^\"", r"``"), (r"\A" + _L('"'), "``")),
        ((r"(``)", r" \1 "), (f"({_L('``')})", r" \1 ")),
        ((r"([ \(\[{<])(\"|\'{2})", r"\1 `` "),
         ("(" + _rx(r"[ \(\[{<]") + ")(" + _L('"') + "|" + _L("'") + "{2})", r"\1 `` ")),
    ]
    if word:
        rules.append(((r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", r"\1 "), _QUOTE))
    return rules


def _final_period(closers: str, possessive: bool, rewrite: str):
    """``([^\\.])(\\.)([closers]*)\\s*$``: the match always runs to the end of the text (greedy
    ``\\s*`` eats every trailing whitespace, a final newline included), so ``$`` is ``\\z``. The
    possessive ``*+`` gives the same matches as ``*``: giving back a closer never helps ``\\s*$``
    (the only closer that is whitespace is the space, which ``\\s*`` takes anyway)."""
    nltk = r"([^\.])(\.)([" + closers + "]*" + ("+" if possessive else "") + r")\s*$"
    cls = _rx("[" + closers + "]")
    not_dot, space = _rx(r"[^\.]"), _rx(r"\s")
    return (nltk, rewrite), (f"({not_dot})({_L('.')})({cls}*){space}*\\z", rewrite)


def _punctuation(word: bool) -> list:
    colon, not_digit, not_quote = _rx("[:,]"), _rx(r"[^\d]"), _rx("[^']")
    ellipsis = ((r"\.{2,}", r" \g<0> "), (_L(".") + "{2,}", r" \0 ")) if word else (
        (r"\.\.\.", r" ... "), (_L("..."), r" \0 "))
    rules = [_final_period(r"\]\)}>" + '"' + r"\'" + "»”’ ", True, r"\1 \2 \3 ")] if word else []
    rules += [
        ((r"([:,])([^\d])", r" \1 \2"), (f"({colon})({not_digit})", r" \1 \2")),
        # $ without MULTILINE: at the end or before a final "\n"; the two cannot both hold for
        # a [:,] just before them, so at most one match, and the newline is put back.
        ((r"([:,])$", r" \1 "), (f"({colon})({_L(NEWLINE)}?)\\z", r" \1 \2")),
        ellipsis,
        ((r"[;@#$%&]", r" \g<0> "), (_rx("[;@#$%&]"), r" \0 ")),
    ]
    if word:
        rules.append(((r"[\u2012-\u2015]", r" \g<0> "), (_rx("[\u2012-\u2015]"), r" \0 ")))
    rules += [
        _final_period(r"\]\)}>" + '"' + r"\'", False, r"\1 \2\3 "),
        ((r"[?!]", r" \g<0> "), (_rx("[?!]"), r" \0 ")),
        ((r"([^'])' ", r"\1 ' "), (f"({not_quote}){_L(QUOTE_SPACE)}", r"\1 ' ")),
    ]
    if word:
        rules.append(((r"[*]", r" \g<0> "), (_rx("[*]"), r" \0 ")))
    return rules


def _ending_quotes(word: bool) -> list:
    q = _L("'")
    short = "|".join(q + _rx(f"[{c}{c.upper()}]") for c in "smd") + "|" + q
    longer = "|".join(_L(s) for s in ("'ll", "'LL", "'re", "'RE", "'ve", "'VE", "n't", "N'T"))
    not_qs = _rx("[^' ]")
    rules = [((r"([»”’])", r" \1 "), (f"({_rx('[»”’]')})", r" \1 "))] if word else []
    rules += [((r"''", " '' "), (_L("''"), " '' ")), ((r'"', " '' "), (_L('"'), " '' "))]
    if word:
        rules.append(((r"\s+", " "), (_rx(r"\s") + "+", " ")))
    rules += [
        ((r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 "), (f"({not_qs})({short}) ", r"\1 \2 ")),
        ((r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
         (f"({not_qs})({longer}) ", r"\1 \2 ")),
    ]
    return rules


_C2 = re.compile(r"\(\?i\)\\b\(('?[a-z]+)\)\(\?#X\)\(('?[a-z]+)\)(\\b|\(\?=\\s\))")
_C3 = re.compile(r"\(\?i\) \(('?[a-z]+)\)\(\?#X\)\(('?[a-z]+)\)\\b")


def _contraction_rules(c2: list, c3: list) -> list:
    """MacIntyre's contractions (stdlib ``re``, ``(?i)``, replacement `` \\1 \\2 ``).

    ``\\b`` before the first letter (a word character) means "start, or a non-word character
    before"; ``\\b`` after the last letter means "a non-word character, or the end". RE2 consumes
    that character and puts it back. Two matches can share one context character ("cannot
    cannot": the space after the first is the context before the second), and then the RE2 scan,
    having consumed it, misses the second. Matches never overlap in their letters, the rewrite of
    a match leaves its context characters in place and creates no new match (it splits the word
    with spaces), and a missed match is always preceded by a found one; so a second pass over the
    result finds exactly the missed ones, with the same context as in the original text.

    ``(?i) ('t)(?#X)(is)\b`` starts with a literal space instead, which the rewrite's trailing
    space can newly provide: " 'tis'tis" becomes " 't is 'tis" after the first pass, and the
    second 'tis, which Python does not split (its scan saw "s'tis"), would match. A missed match
    of this rule always has the inserted space before its own (the consumed context put back
    after the rewrite's trailing space); a falsely created one has the letter s there. So its
    second pass requires one more space before the match.
    """
    nw, space = re2_class("re", r"\W", re.IGNORECASE), re2_class("re", r"\s", re.IGNORECASE)
    rules = []
    for src in c2:
        m = _C2.fullmatch(src)
        if not m:
            raise UnsupportedInGraph(f"nltk's contraction rule {src!r} is not the one this graph "
                                     f"reproduces; tokenizer method: word/treebank cannot export")
        after = f"({nw}|\\z)" if m.group(3) == r"\b" else f"({space})"
        rx = (f"(\\A|{nw})({_ci(m.group(1))})({_ci(m.group(2))}){after}", r"\1 \2 \3 \4")
        rules += [((src, r" \1 \2 "), rx)] * 2
    for src in c3:
        m = _C3.fullmatch(src)
        if not m:
            raise UnsupportedInGraph(f"nltk's contraction rule {src!r} is not the one this graph "
                                     f"reproduces; tokenizer method: word/treebank cannot export")
        body = f"({_ci(m.group(1))})({_ci(m.group(2))})({nw}|\\z)"
        first, second = (_ci(" ") + body, r" \1 \2 \3"), (_L(" ") + _ci(" ") + body, r"  \1 \2 \3")
        rules += [((src, r" \1 \2 "), first), ((src, r" \1 \2 "), second)]
    return rules


def _installed_rules(cls) -> list:
    """The (pattern, replacement) sequence that the installed nltk ``tokenize`` runs."""
    seq = [(r.pattern, s) for r, s in cls.STARTING_QUOTES]
    seq += [(r.pattern, s) for r, s in cls.PUNCTUATION]
    seq += [(cls.PARENS_BRACKETS[0].pattern, cls.PARENS_BRACKETS[1])]
    seq += [(cls.DOUBLE_DASHES[0].pattern, cls.DOUBLE_DASHES[1]), (_PAD, _PAD)]
    seq += [(r.pattern, s) for r, s in cls.ENDING_QUOTES]
    seq += [(r.pattern, r" \1 \2 ") for r in cls.CONTRACTIONS2 for _ in (0, 1)]
    seq += [(r.pattern, r" \1 \2 ") for r in cls.CONTRACTIONS3 for _ in (0, 1)]
    return seq


def _flags_as_expected(cls) -> bool:
    """redos rules: regex VERSION0 | UNICODE (+ IGNORECASE from a leading ``(?i)``); the
    contractions: stdlib re UNICODE | IGNORECASE (from their ``(?i)``)."""
    import regex

    redos = [r for r, _ in cls.STARTING_QUOTES + cls.PUNCTUATION + cls.ENDING_QUOTES]
    redos += [cls.PARENS_BRACKETS[0], cls.DOUBLE_DASHES[0]]
    base = regex.V0 | regex.UNICODE
    ok = all(r.flags == base | (regex.I if r.pattern.startswith("(?i)") else 0) for r in redos)
    return ok and all(r.flags == re.UNICODE | re.IGNORECASE
                      for r in cls.CONTRACTIONS2 + cls.CONTRACTIONS3)


@functools.lru_cache(maxsize=2)
def destructive_rules(method: str) -> tuple:
    """The RE2 steps of ``word`` / ``treebank``, checked against the installed nltk rules."""
    from nltk.tokenize import NLTKWordTokenizer, TreebankWordTokenizer

    word = method == "word"
    cls = NLTKWordTokenizer if word else TreebankWordTokenizer
    rules = _starting_quotes(word) + _punctuation(word)
    rules.append(((r"[\]\[\(\)\{\}\<\>]", r" \g<0> "), (_rx(r"[\]\[\(\)\{\}\<\>]"), r" \0 ")))
    rules += [((r"--", r" -- "), (_L("--"), " -- ")), ((_PAD, _PAD), _PAD)]
    rules += _ending_quotes(word)
    rules += _contraction_rules([r.pattern for r in cls.CONTRACTIONS2],
                                [r.pattern for r in cls.CONTRACTIONS3])
    if [nltk for nltk, _ in rules] != _installed_rules(cls):
        raise UnsupportedInGraph(
            f"tokenizer method: {method}: the installed nltk's {cls.__name__} rules differ from "
            f"the ones this graph reproduces; pin the nltk version the export was verified with")
    if not _flags_as_expected(cls):
        raise UnsupportedInGraph(f"tokenizer method: {method}: the installed nltk compiles its "
                                 f"{cls.__name__} rules with other flags than verified")
    for _, step in rules:
        if isinstance(step, tuple):
            check_re2(step[0], f"tokenizer method: {method}")
    return tuple(step for _, step in rules)


@functools.lru_cache(maxsize=1)
def _quote_sets() -> dict:
    """Sets for ``(?i)(?<!\\w)(\\')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)`` under the regex engine
    (IGNORECASE, so e.g. U+017F LONG S is an ``s``); its ``\\b`` tests the same ``\\w`` on both
    sides (verified over every code point in tests/test_nltk_graph.py)."""
    import regex

    sets = {"w": char_ranges("regex", r"\w", regex.I), "q": char_ranges("regex", "'", regex.I)}
    if sets["w"] != char_ranges("regex", r"\w", 0):
        raise AssertionError("regex's (?i)\\w differs from \\w")
    for c in set("revlmtsdn"):
        sets[c] = char_ranges("regex", c, regex.I)
        if not all(_inside(a, b, sets["w"]) for a, b in sets[c]):
            raise AssertionError(f"a case variant of {c!r} is not a word character")
    return {k: boundaries(v) for k, v in sets.items()}


def _inside(lo: int, hi: int, ranges) -> bool:
    return any(a <= lo and hi <= b for a, b in ranges)


_LOOKAHEAD_WORDS = ("re", "ve", "ll", "m", "t", "s", "d", "n")


# ----------------------------------------------------------------------------------------------
# Python reference for offsets


def _method_message(method: str) -> str:
    if method == "tweet":
        return ("tokenizer method: tweet cannot run inside the TensorFlow graph (TweetTokenizer's "
                "look-arounds, HTML unescaping and emoticon rules have no exact RE2 form); "
                "use word, treebank, wordpunct or regexp to export")
    return f"tokenizer method: {method!r} is unknown; expected one of {', '.join(METHODS)}"


# ----------------------------------------------------------------------------------------------
# The graph


class GraphNLTK:
    """nltk's ``word``, ``treebank``, ``wordpunct`` or ``regexp`` tokenizer as graph ops.

    Args:
        method: ``NLTKTokenizer``'s method.
        pattern: the ``regexp`` pattern (``RegexpTokenizer(pattern)`` with nltk's default flags).

    Raises:
        UnsupportedInGraph: for ``tweet`` and for patterns that cannot be reproduced exactly.
    """

    def __init__(self, method: str, pattern: str | None = None):
        if method not in METHODS or method == "tweet":
            raise UnsupportedInGraph(_method_message(method))
        if (pattern is not None) != (method == "regexp"):
            raise ValueError("pattern is used with method regexp only, and regexp needs one")
        self.method, self.pattern = method, pattern
        self._steps, self._findall = None, None
        if method in ("word", "treebank"):
            self._steps = destructive_rules(method)
            if method == "word":
                _quote_sets()
        else:
            if method == "wordpunct":
                self._check_wordpunct()
                pattern = WORDPUNCT_PATTERN
            tr = translate_findall(pattern, TOKENIZER_FLAGS)
            check_re2(tr.re2, f"pattern {pattern!r}")
            self._findall = tr

    @staticmethod
    def _check_wordpunct():
        from nltk.tokenize import WordPunctTokenizer

        tk = WordPunctTokenizer()
        if (getattr(tk, "_pattern", None), getattr(tk, "_flags", None)) != (
                WORDPUNCT_PATTERN, TOKENIZER_FLAGS):
            raise UnsupportedInGraph("tokenizer method: wordpunct: the installed nltk's "
                                     "WordPunctTokenizer differs from the one this graph reproduces")

    def trackables(self) -> dict:
        """Resources to attach to the exporting ``tf.Module``: none (all tables are constants)."""
        return {}

    def __call__(self, text):
        if self._findall is not None:
            return self.segment(text)[0]
        return self._destructive_tokens(_valid_utf8(text))

    def segment(self, text):
        """-> ``(tokens, starts, ends)``, RaggedTensors ``[batch, (n)]`` of ``tf.string`` and int64
        code-point offsets into each input text (end exclusive)."""
        text = _valid_utf8(text)
        if self._findall is not None:
            return findall_graph(text, self._findall.re2, self._findall.groups)
        tokens = self._destructive_tokens(text)
        starts, ends = self._destructive_offsets(text, tokens)
        return tokens, starts, ends

    # -- word / treebank ---------------------------------------------------------------------

    def _destructive_tokens(self, text):
        tf = _tf()
        for step in self._steps:
            if step == _PAD:
                text = tf.strings.join([" ", text, " "])
            elif step == _QUOTE:
                text = _quote_rule(text)
            else:
                text = tf.strings.regex_replace(text, step[0], step[1])
        # str.split(): runs of str.isspace() characters separate tokens.
        text = tf.strings.regex_replace(text, render_class(_isspace()) + "+", " ")
        parts = tf.strings.split(text, sep=" ")
        return tf.ragged.boolean_mask(parts, tf.strings.length(parts) > 0)

    def _destructive_offsets(self, text, tokens):
        tf = _tf()
        cps = tf.strings.unicode_decode(text, "UTF-8")
        flat = cps.flat_values
        keep = tf.logical_not(in_set(flat, boundaries(_isspace())))
        pos = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(cps.row_splits, cps.value_rowids())
        s_pos = tf.boolean_mask(pos, keep)  # input position of each S character
        s_cp = tf.boolean_mask(flat, keep)
        counts = tf.math.unsorted_segment_sum(tf.cast(keep, tf.int64), cps.value_rowids(),
                                              cps.nrows())
        s_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(counts)], 0)
        is_q = tf.cast(tf.equal(s_cp, ord('"')), tf.int64)
        d = tf.cumsum(is_q, exclusive=True)
        key = tf.range(tf.size(s_cp, out_type=tf.int64)) + d  # strictly increasing over the batch
        d_ext = tf.concat([d, tf.reduce_sum(is_q, keepdims=True)], 0)
        base = s_splits[:-1] + tf.gather(d_ext, s_splits[:-1])  # key at each row's first char
        tok_len = tf.cast(tf.strings.length(tokens.flat_values, unit="UTF8_CHAR"), tf.int64)
        t = row_exclusive_cumsum(tok_len, tokens.row_splits) + tf.gather(base, tokens.value_rowids())
        k = tf.searchsorted(key, t, side="left", out_type=tf.int64)
        k_safe = tf.minimum(k, tf.maximum(tf.size(s_cp, out_type=tf.int64) - 1, 0))
        s_len = tok_len - tf.gather(is_q, k_safe)
        starts = tf.gather(s_pos, k_safe)
        ends = tf.gather(s_pos, tf.maximum(k_safe + s_len - 1, 0)) + 1
        ragged = functools.partial(tf.RaggedTensor.from_row_splits, row_splits=tokens.row_splits,
                                   validate=False)
        return ragged(starts), ragged(ends)


def _valid_utf8(text):
    """The input contract is valid UTF-8; an invalid byte becomes U+FFFD here, so that the
    match brackets (bytes 0xFD-0xFF, never in UTF-8) stay unambiguous whatever arrives."""
    tf = _tf()
    text = tf.convert_to_tensor(text, tf.string)
    return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace",
                                        replacement_char=0xFFFD)


def _quote_rule(text):
    """``(?i)(?<!\\w)(\\')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)`` -> ``\\1 `` with code-point masks.

    Every match is the single character ``'`` decided by its neighbours in the step's input,
    so the matches are exactly the positions where the masks hold; a space goes after each.
    """
    tf = _tf()
    sets = _quote_sets()
    cps = tf.strings.unicode_decode(text, "UTF-8")
    flat = cps.flat_values
    n = tf.size(flat, out_type=tf.int64)
    rowids = cps.value_rowids()
    pos = tf.range(n) - tf.gather(cps.row_splits, rowids)
    rowlen = tf.gather(cps.row_lengths(), rowids)
    width = 4
    padded = tf.concat([tf.fill([width], -1), flat, tf.fill([width], -1)], 0)

    def at(k):  # code point at offset k within the row, -1 outside it
        v = tf.gather(padded, tf.range(n) + width + k)
        return tf.where((pos + k >= 0) & (pos + k < rowlen), v, -1)

    memo = {}

    def is_(name, k):
        if (name, k) not in memo:
            memo[name, k] = in_set(at(k), sets[name])
        return memo[name, k]

    forbidden = tf.zeros_like(flat, dtype=tf.bool)
    for w in _LOOKAHEAD_WORDS:
        hit = tf.logical_not(is_("w", 1 + len(w)))  # \b after a word character
        for m, c in enumerate(w):
            hit &= is_(c, 1 + m)
        forbidden |= hit
    match = is_("q", 0) & tf.logical_not(is_("w", -1)) & is_("w", 1) & tf.logical_not(forbidden)
    reps = 1 + tf.cast(match, tf.int64)
    out = tf.repeat(flat, reps)
    last = tf.boolean_mask(tf.cumsum(reps) - 1, match)
    out = tf.tensor_scatter_nd_update(out, last[:, None], tf.fill(tf.shape(last), 32))
    splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(reps)], 0)
    new = tf.RaggedTensor.from_row_splits(out, tf.gather(splits, cps.row_splits), validate=False)
    return tf.strings.unicode_encode(new, "UTF-8")
