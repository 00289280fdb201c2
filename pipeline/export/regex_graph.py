"""Python regular expressions rebuilt as exact RE2 for TensorFlow graphs.

TensorFlow's string ops (``tf.strings.regex_replace``, ``regex_full_match``) run RE2, whose
``\\w \\d \\s \\b`` are ASCII-only, while nltk runs the third-party ``regex`` engine (through
``nltk.redos``) or the stdlib ``re``. This module closes that gap by construction:

- every single-character item (a literal under ``(?i)``, ``[...]``, ``\\w``, ``.``, ...) becomes an
  explicit RE2 class listing the code points that the Python engine itself matches, found by
  running that engine over every code point (0..0x10FFFF without surrogates) once and compressing
  the result to ranges (:func:`char_ranges`, cached);
- the structure of a pattern (concatenation, alternation, greedy and lazy repetition, groups) is
  translated from the stdlib parser's tree (``re._parser``), where RE2 and the backtracking
  engines agree (both are leftmost-first with the same preferences); every construct where
  they may not (look-arounds, back-references, conditionals, atomic groups, possessive
  quantifiers, ``\\b``, a non-MULTILINE ``$``, empty matches, repeated empty-matching bodies,
  capturing groups inside repetitions) is refused with :class:`UnsupportedInGraph`;
- :func:`findall_graph` reproduces ``findall`` (and its one-group form) with one linear
  ``regex_replace`` that brackets every match with bytes that never occur in UTF-8.

One RE2 quirk is worked around in :func:`render_class`: RE2 turns a two-letter class such as
``[Ss]`` into a case-folded literal and, when it merges that literal into a class while factoring
an alternation (``[Ss]|x``), adds the whole Unicode fold orbit (U+017F LONG S, U+212A KELVIN
SIGN); such classes get a third member that valid UTF-8 cannot contain (a surrogate).

Only tensorflow (lazily), numpy, regex and the stdlib are imported.
"""

from __future__ import annotations

import functools
import random
import re
import warnings

import numpy as np
import regex

from stages.errors import UnsupportedInGraph

try:  # Python 3.11+
    import re._constants as _sc
    import re._parser as _sp
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sc
    import sre_parse as _sp

#: RegexpTokenizer's default flags.
TOKENIZER_FLAGS = re.UNICODE | re.MULTILINE | re.DOTALL
MAX_CP = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
#: RE2 refuses counted repetitions above this.
RE2_MAX_REPEAT = 1000
#: Bytes that never occur in UTF-8: brackets around matches in the marked text.
OPEN, MID, CLOSE = b"\xfe", b"\xfd", b"\xff"




def _tf():
    import tensorflow as tf

    return tf


# ----------------------------------------------------------------------------------------------
# Character sets by enumeration


@functools.lru_cache(maxsize=1)
def _all_chars() -> str:
    lo, hi = _SURROGATES
    return "".join(map(chr, range(lo))) + "".join(map(chr, range(hi + 1, MAX_CP + 1)))


def _compress(cps: np.ndarray) -> tuple:
    """Sorted code points -> ((lo, hi), ...) inclusive ranges."""
    if cps.size == 0:
        return ()
    breaks = np.nonzero(np.diff(cps) != 1)[0]
    los = np.concatenate([cps[:1], cps[breaks + 1]])
    his = np.concatenate([cps[breaks], cps[-1:]])
    return tuple((int(a), int(b)) for a, b in zip(los, his))


@functools.lru_cache(maxsize=1024)
def char_ranges(engine: str, item: str, flags: int = 0) -> tuple:
    """The code points that the single-character regex ``item`` matches, as inclusive ranges.

    ``engine`` is ``"regex"`` (the third-party engine nltk's ``redos`` compiles with) or ``"re"``
    (the stdlib). The engine runs once over the text of every code point in order, matching
    maximal runs ``(?:item)+``; each run is a range (its ends, and the character after it, are
    checked one at a time).
    """
    literal = _literal_set(item, flags)
    if literal is not None:
        return literal
    mod = regex if engine == "regex" else re
    if mod is regex and flags & regex.FULLCASE:
        raise AssertionError("full case folding makes items match several characters")
    # Maximal runs of matching characters, one match each: linear, and the output is the ranges.
    runs = mod.compile(f"(?:{item})+", flags)
    one = mod.compile(item, flags)
    out = []
    gap = _SURROGATES[1] - _SURROGATES[0] + 1
    for m in runs.finditer(_all_chars()):
        a, b = m.start(), m.end() - 1
        if a < _SURROGATES[0] <= b:  # the run jumps over the surrogates
            out += [(a, _SURROGATES[0] - 1), (_SURROGATES[1] + 1, b + gap)]
        else:
            out.append((a, b) if b < _SURROGATES[0] else (a + gap, b + gap))
    for lo, hi in out:  # the engine agrees one character at a time at both ends of every range
        if not (one.fullmatch(chr(lo)) and one.fullmatch(chr(hi))) or (
                hi < MAX_CP and not _SURROGATES[0] <= hi + 1 <= _SURROGATES[1]
                and one.fullmatch(chr(hi + 1))):
            raise AssertionError(f"{item!r} is not a single-character item under {engine}")
    return tuple(out)


def _literal_set(item: str, flags: int):
    """Fast path: a case-sensitive literal or positive class of literals and ranges matches
    exactly those code points in every engine (no enumeration needed); else None."""
    if flags & (re.IGNORECASE | regex.IGNORECASE) or len(item) > 200:
        return None
    try:
        tree = _sp.parse(item)
    except re.error:
        return None
    if tree.state.flags & re.IGNORECASE or len(tree) != 1:
        return None
    op, av = tree[0]
    if op is _sc.LITERAL:
        return ((av, av),)
    if op is not _sc.IN or not all(o in (_sc.LITERAL, _sc.RANGE) for o, _ in av):
        return None
    if sum(a[1] - a[0] + 1 for o, a in av if o is _sc.RANGE) > 100_000:
        return None
    cps = set()
    for o, a in av:
        cps.update([a] if o is _sc.LITERAL else range(a[0], a[1] + 1))
    return ranges_of(c for c in cps if not _SURROGATES[0] <= c <= _SURROGATES[1])


def ranges_of(chars) -> tuple:
    """Inclusive ranges of a set of characters or code points."""
    cps = sorted({c if isinstance(c, int) else ord(c) for c in chars})
    return _compress(np.asarray(cps, dtype=np.int64))


def boundaries(ranges) -> np.ndarray:
    """Sorted ``[lo0, hi0 + 1, lo1, hi1 + 1, ...]``: a code point is in the set when
    ``searchsorted(b, cp, side='right')`` is odd."""
    out = np.asarray([x for lo, hi in ranges for x in (lo, hi + 1)], dtype=np.int32)
    return out.reshape(-1)


def in_set(cp, bounds):
    """Graph membership test of int32 code points ``cp`` (any shape, 1-D here) in ``bounds``."""
    tf = _tf()
    if bounds.size == 0:
        return tf.zeros_like(cp, dtype=tf.bool)
    idx = tf.searchsorted(tf.constant(bounds), cp, side="right")
    return tf.math.floormod(idx, 2) == 1


def _re2_cp(c: int) -> str:
    return "\\x{%X}" % c


def _py_cp(c: int) -> str:
    return "\\U%08X" % c


def render_class(ranges, dialect: str = "re2") -> str:
    """An explicit class for ``ranges`` in RE2 (``\\x{..}``) or Python (``\\U........``) syntax."""
    esc = _re2_cp if dialect == "re2" else _py_cp
    if not ranges:  # the empty set
        return "[^%s-%s]" % (esc(0), esc(MAX_CP))
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return esc(ranges[0][0])
    body = "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)
    if dialect == "re2" and sum(b - a + 1 for a, b in ranges) == 2:
        # RE2's parser rewrites a two-character class such as [Ss] into the literal s with case
        # folding, and when it later merges that literal into a class (factoring an alternation
        # such as [Ss]|x) it adds the full Unicode fold orbit: U+017F, U+212A... A third member
        # that cannot occur in valid UTF-8 (a surrogate) keeps the class a class.
        body += esc(_SURROGATES[0])
    return f"[{body}]"


def re2_class(engine: str, item: str, flags: int = 0) -> str:
    """Shorthand: the RE2 class of a single-character ``item`` under ``engine``."""
    return render_class(char_ranges(engine, item, flags))


def re2_literal(text: str) -> str:
    """``text`` as an RE2 sequence of escaped code points (exact, case-sensitive)."""
    return "".join(_re2_cp(ord(c)) for c in text)


# ----------------------------------------------------------------------------------------------
# Pattern translation


_CATEGORY = {
    _sc.CATEGORY_DIGIT: r"\d", _sc.CATEGORY_NOT_DIGIT: r"\D",
    _sc.CATEGORY_SPACE: r"\s", _sc.CATEGORY_NOT_SPACE: r"\S",
    _sc.CATEGORY_WORD: r"\w", _sc.CATEGORY_NOT_WORD: r"\W",
}
_REFUSED_OPS = {
    _sc.GROUPREF: "a back-reference (\\1 or (?P=name)), which RE2 cannot run",
    _sc.GROUPREF_EXISTS: "a conditional (?(group)yes|no), which RE2 cannot run",
    _sc.ATOMIC_GROUP: "an atomic group (?>...), which RE2 cannot run",
    _sc.POSSESSIVE_REPEAT: "a possessive quantifier (*+, ++, ?+ or {m,n}+), which RE2 cannot run",
}
_ASSERTS = {
    (_sc.ASSERT, 1): "a look-ahead (?=...)", (_sc.ASSERT_NOT, 1): "a negative look-ahead (?!...)",
    (_sc.ASSERT, -1): "a look-behind (?<=...)", (_sc.ASSERT_NOT, -1): "a negative look-behind (?<!...)",
}
_ENGINE_FLAGS = (
    (re.IGNORECASE, regex.IGNORECASE), (re.DOTALL, regex.DOTALL), (re.ASCII, regex.ASCII),
    (re.UNICODE, regex.UNICODE), (re.MULTILINE, regex.MULTILINE),
)
_HINT = "; rewrite the pattern without it to export (or use another tokenizer method)"


def _regex_flags(flags: int) -> int:
    out = 0
    for py, rx in _ENGINE_FLAGS:
        if flags & py:
            out |= rx
    if flags & re.ASCII:
        out &= ~regex.UNICODE
    return out


class Translation:
    """A pattern translated for ``findall``: RE2 text, a Python twin and the capture count."""

    def __init__(self, pattern: str, re2: str, python: str, groups: int):
        self.pattern, self.re2, self.python, self.groups = pattern, re2, python, groups

    def __repr__(self):
        return f"Translation({self.pattern!r}, groups={self.groups})"


class _Translator:
    def __init__(self, pattern: str, dialect: str):
        self.pattern, self.dialect = pattern, dialect

    def refuse(self, what: str):
        raise UnsupportedInGraph(f"pattern {self.pattern!r} uses {what}{_HINT}")

    def seq(self, items, flags: int, in_repeat: bool) -> str:
        return "".join(self.item(op, av, flags, in_repeat) for op, av in items)

    def char_item(self, op, av, flags: int) -> str:
        """The explicit class of a single-character item, enumerated with the regex engine."""
        if op is _sc.LITERAL and not flags & re.IGNORECASE:
            return render_class(((av, av),), self.dialect)
        if op is _sc.LITERAL:
            src = _py_cp(av)
        elif op is _sc.NOT_LITERAL:
            src = f"[^{_py_cp(av)}]"
        elif op is _sc.ANY:
            src = "."
        elif op is _sc.CATEGORY:
            src = _CATEGORY[av]
        else:  # IN
            src = "[" + "".join(self.class_member(o, a) for o, a in av) + "]"
        return render_class(char_ranges("regex", src, _regex_flags(flags)), self.dialect)

    def class_member(self, op, av) -> str:
        if op is _sc.NEGATE:
            return "^"
        if op is _sc.LITERAL:
            return _py_cp(av)
        if op is _sc.RANGE:
            return f"{_py_cp(av[0])}-{_py_cp(av[1])}"
        if op is _sc.CATEGORY and av in _CATEGORY:
            return _CATEGORY[av]
        self.refuse(f"the class item {op} {av}, which has no exact translation")

    def item(self, op, av, flags: int, in_repeat: bool) -> str:
        if op in (_sc.LITERAL, _sc.NOT_LITERAL, _sc.ANY, _sc.IN, _sc.CATEGORY):
            return self.char_item(op, av, flags)
        if op is _sc.BRANCH:
            return "(?:" + "|".join(self.seq(alt, flags, in_repeat) for alt in av[1]) + ")"
        if op is _sc.SUBPATTERN:
            group, add, delete, body = av
            if group is not None and in_repeat:
                self.refuse("a capturing group inside a repetition that can run more than once "
                            "(which capture survives differs between engines)")
            inner = self.seq(body, (flags | add) & ~delete, in_repeat)
            return f"({inner})" if group is not None else f"(?:{inner})"
        if op in (_sc.MAX_REPEAT, _sc.MIN_REPEAT):
            return self.repeat(op, av, flags, in_repeat)
        if op is _sc.AT:
            return self.anchor(av, flags)
        if op in (_sc.ASSERT, _sc.ASSERT_NOT):
            self.refuse(_ASSERTS[(op, av[0])] + ", which RE2 cannot run")
        if op in _REFUSED_OPS:
            self.refuse(_REFUSED_OPS[op])
        self.refuse(f"the construct {op}, which has no exact RE2 translation")

    def repeat(self, op, av, flags: int, in_repeat: bool) -> str:
        lo, hi, body = av
        if body.getwidth()[0] == 0:
            self.refuse("a repetition of a sub-pattern that can match the empty string "
                        "(engines differ on empty iterations)")
        unbounded = hi == _sc.MAXREPEAT
        if lo > RE2_MAX_REPEAT or (not unbounded and hi > RE2_MAX_REPEAT):
            self.refuse(f"a counted repetition above {RE2_MAX_REPEAT}, RE2's limit")
        inner = self.seq(body, flags, in_repeat or unbounded or hi > 1)
        if (lo, unbounded) == (0, True):
            q = "*"
        elif (lo, unbounded) == (1, True):
            q = "+"
        elif (lo, hi) == (0, 1):
            q = "?"
        elif unbounded:
            q = "{%d,}" % lo
        elif lo == hi:
            q = "{%d}" % lo
        else:
            q = "{%d,%d}" % (lo, hi)
        return f"(?:{inner}){q}" + ("?" if op is _sc.MIN_REPEAT else "")

    def anchor(self, av, flags: int) -> str:
        if av is _sc.AT_BEGINNING_STRING or (av is _sc.AT_BEGINNING and not flags & re.MULTILINE):
            return "\\A"
        if av is _sc.AT_END_STRING:
            return "\\z" if self.dialect == "re2" else "\\Z"
        if av is _sc.AT_BEGINNING:
            return "(?m:^)"
        if av is _sc.AT_END and flags & re.MULTILINE:
            return "(?m:$)"
        if av is _sc.AT_END:
            self.refuse("$ without MULTILINE, which also matches before a final newline; "
                        "use \\Z (end of text) or (?m:$)")
        self.refuse("a word boundary \\b or \\B (RE2's are ASCII-only and the regex engine's "
                    "cannot be emulated exactly)")


def _parse(pattern: str, flags: int):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        try:
            tree = _sp.parse(pattern, flags)
        except FutureWarning as err:
            raise UnsupportedInGraph(
                f"pattern {pattern!r} uses a nested set or set operation ({err}), which the "
                f"regex engine and re read differently; escape the '[' or '&&'/'--'/'||'/'~~'"
            ) from None
        except re.error as err:
            raise UnsupportedInGraph(
                f"pattern {pattern!r} uses syntax that Python's re parser rejects ({err}), so "
                f"its meaning cannot be verified for the graph; use re-compatible syntax"
            ) from None
    if tree.state.flags & re.LOCALE:
        raise UnsupportedInGraph(f"pattern {pattern!r} uses the LOCALE flag (?L); remove it")
    return tree


def translate_findall(pattern: str, flags: int = TOKENIZER_FLAGS) -> Translation:
    """Translate a ``RegexpTokenizer`` pattern for :func:`findall_graph`, or refuse it.

    Raises:
        UnsupportedInGraph: naming the construct that cannot be reproduced exactly.
    """
    try:
        from nltk import redos

        redos.compile(pattern, flags)
    except Exception as err:  # noqa: BLE001 - whatever nltk itself would raise
        raise UnsupportedInGraph(f"pattern {pattern!r} does not compile for nltk ({err}); fix it")
    tree = _parse(pattern, flags)
    groups = tree.state.groups - 1
    if groups > 1:
        raise UnsupportedInGraph(
            f"pattern {pattern!r} has {groups} capturing groups: RegexpTokenizer then returns "
            f"tuples, not string tokens; use non-capturing groups (?:...)")
    if tree.getwidth()[0] == 0:
        raise UnsupportedInGraph(
            f"pattern {pattern!r} can match the empty string: Python's findall and RE2's global "
            f"replace treat empty matches differently; make every token at least one character")
    gflags = tree.state.flags
    re2 = _Translator(pattern, "re2").seq(tree, gflags, False)
    python = _Translator(pattern, "python").seq(tree, gflags, False)
    tr = Translation(pattern, re2, python, groups)
    _self_check(tr, flags)
    return tr


def _probe_alphabet(tr: Translation) -> list:
    chars = set(tr.pattern) | set("aZz09_ \t\n\r.,;:'\"-$%()[]é\u0301ßſK\u212aİı中😀\x1c\u00a0\u2028")
    for m in re.finditer(r"\\U([0-9A-F]{8})", tr.python):
        c = int(m.group(1), 16)
        chars.update(chr(x) for x in (c - 1, c, c + 1) if 0 <= x <= MAX_CP and not 0xD800 <= x <= 0xDFFF)
    return sorted(chars)


def _self_check(tr: Translation, flags: int, probes: int = 300):
    """Compare the regex engine on the original with stdlib re on the explicit twin.

    A disagreement means the stdlib parser read the pattern differently from the regex engine
    (the translation is built from the former), so the pattern is refused.
    """
    alphabet = _probe_alphabet(tr)
    rng = random.Random(len(tr.pattern))
    orig = regex.compile(tr.pattern, _regex_flags(flags))
    twin = re.compile(tr.python)
    for i in range(probes):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24 if i else 1)))
        if orig.findall(text) != twin.findall(text):
            raise UnsupportedInGraph(
                f"pattern {tr.pattern!r} is read differently by the regex engine and by the re "
                f"parser used for the translation (they disagree on {text!r}); simplify it")


# ----------------------------------------------------------------------------------------------
# Graph helpers


def check_re2(pattern: str, what: str):
    """Compile ``pattern`` with TensorFlow's RE2 once (eagerly) so that failures surface now."""
    tf = _tf()
    try:
        tf.strings.regex_replace(tf.constant([""]), pattern, "")
    except Exception as err:  # noqa: BLE001 - RE2 compile errors surface as various TF errors
        raise UnsupportedInGraph(f"{what}: RE2 rejected the translated pattern ({err})") from None


def row_exclusive_cumsum(values, row_splits):
    """Exclusive cumulative sum of ``values`` restarted at every row of ``row_splits``."""
    tf = _tf()
    c = tf.cumsum(values, exclusive=True)
    total = tf.reduce_sum(values, keepdims=True)
    base = tf.gather(tf.concat([c, total], 0), row_splits[:-1])
    rowids = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=row_splits.dtype)
    return c - tf.gather(base, rowids)


def _pairs(strings, sep):
    """Split strings that each hold exactly one ``sep`` into (left, right)."""
    tf = _tf()
    parts = tf.strings.split(strings, sep).flat_values
    parts = tf.reshape(parts, [-1, 2])
    return parts[:, 0], parts[:, 1]


def findall_graph(text, re2: str, groups: int):
    """``findall`` of an RE2 pattern in a 1-D tf.string batch of valid UTF-8.

    Returns ``(tokens, starts, ends)`` ragged ``[batch, (n)]``: the matches (or group 1 when
    ``groups == 1``) and the code-point span of each whole match (end exclusive).
    """
    tf = _tf()
    rewrite = OPEN + b"\\0" + (MID + b"\\1" if groups else b"") + CLOSE
    marked = tf.strings.regex_replace(text, re2, rewrite)
    pieces = tf.strings.split(marked, CLOSE)  # per row: "gap OPEN match [MID group]" ..., tail
    lengths = pieces.row_lengths() - 1
    pos = tf.range(tf.size(pieces.flat_values, out_type=tf.int64)) - tf.gather(
        pieces.row_splits, pieces.value_rowids())
    keep = pos < tf.gather(lengths, pieces.value_rowids())
    gap, match = _pairs(tf.boolean_mask(pieces.flat_values, keep), OPEN)
    token = match
    if groups:
        match, token = _pairs(match, MID)
    splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(lengths)], 0)
    glen = tf.cast(tf.strings.length(gap, unit="UTF8_CHAR"), tf.int64)
    mlen = tf.cast(tf.strings.length(match, unit="UTF8_CHAR"), tf.int64)
    starts = row_exclusive_cumsum(glen + mlen, splits) + glen
    ragged = functools.partial(tf.RaggedTensor.from_row_splits, row_splits=splits, validate=False)
    return ragged(token), ragged(starts), ragged(starts + mlen)
