"""Text normalisation shared by the Python tokenizers and the exported TensorFlow graph.

Normalisation is defined one code point at a time: every character ``c`` becomes
``f(c)``, where ``f(c) = NFKC(c)`` (option ``nfkc``), then lower-cased (option ``lowercase``),
both computed by Python's ``unicodedata`` / ``str.lower`` on that single character. The
normalised text is the concatenation of the ``f(c)``. The same table (``char_map``) drives
``str.translate`` here and a lookup table in the SavedModel, so both give identical results by
construction, and every normalised character maps back to the raw character it came from
(entity offsets rely on that).

Where this differs from applying NFKC and ``str.lower`` to a whole string:

- combining sequences are not composed: ``"e\\u0301"`` (e + combining acute) stays two code
  points instead of becoming ``"é"``, and Hangul jamo sequences stay jamo (precomposed
  characters, which is what almost all text holds, are unchanged either way, and a
  compatibility character such as ``"ｅ"`` or ``"ﬁ"`` still becomes ``"e"`` / ``"fi"``);
- a canonical reordering of several combining marks is not applied;
- Greek capital sigma always lower-cases to ``"σ"``, never to the final form ``"ς"``.

Example:
    >>> normalize("ＡＢＣ １２３！ﬁ", nfkc=True, lowercase=True)
    'abc 123!fi'
"""

from __future__ import annotations

import functools
import unicodedata

#: The highest code point, plus one.
CODE_POINTS = 0x110000


def _characters():
    return (chr(c) for c in range(CODE_POINTS) if not 0xD800 <= c <= 0xDFFF)


def normalize_char(c: str, nfkc: bool, lowercase: bool) -> str:
    """``f(c)`` of the module docstring for one character."""
    if nfkc:
        c = unicodedata.normalize("NFKC", c)
    if lowercase:
        c = c.lower()
    return c


@functools.lru_cache(maxsize=None)
def char_map(nfkc: bool, lowercase: bool) -> dict[int, str]:
    """Every code point that normalisation changes, mapped to what it becomes (a non-empty
    string), as ``str.translate`` takes it. Built once per process and setting (about 0.4 s)."""
    if not (nfkc or lowercase):
        return {}
    table = {}
    for c in _characters():
        out = normalize_char(c, nfkc, lowercase)
        if out != c:
            table[ord(c)] = out
    return table


def normalize(text: str, nfkc: bool, lowercase: bool) -> str:
    """Normalise ``text`` character by character (see the module docstring)."""
    if not (nfkc or lowercase):
        return text
    return text.translate(char_map(nfkc, lowercase))


@functools.lru_cache(maxsize=None)
def space_code_points() -> tuple[int, ...]:
    """Code points Python treats as whitespace (``str.isspace``, ``str.split``, ``str.strip``,
    and ``\\s`` of the ``re`` module)."""
    return tuple(ord(c) for c in _characters() if c.isspace())
