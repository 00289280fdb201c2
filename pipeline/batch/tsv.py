r"""The TSV cell codec of ``ktp predict`` output: the batch runner writes cells with it and the
Beam shard merge reads them back with it.

A cell holds any string on one line and without tabs. ``escape_cell`` writes a backslash as
``\\`` (first), then a tab as ``\t``, a line feed as ``\n`` and a carriage return as ``\r``;
``unescape_cell`` reads those four escapes back in one left-to-right pass, so
``unescape_cell(escape_cell(s)) == s`` for every string ``s``, file names with backslashes or
carriage returns included. A backslash before any other character, or at the end of a cell
(``escape_cell`` writes neither), is kept as it is.

Example:
    >>> escape_cell("C:\\new\tfile")
    'C:\\\\new\\tfile'
    >>> unescape_cell(escape_cell("C:\\new\tfile")) == "C:\\new\tfile"
    True
"""

from __future__ import annotations

import re

_ESCAPED = re.compile(r"\\([\\tnr])")
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def escape_cell(text: str) -> str:
    """``text`` as one TSV cell: backslash, tab, line feed and carriage return escaped."""
    # The backslash goes first, so the escapes written after it are not escaped again.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def unescape_cell(cell: str) -> str:
    """The string that ``escape_cell`` turned into ``cell``."""
    return _ESCAPED.sub(lambda m: _UNESCAPES[m.group(1)], cell)
