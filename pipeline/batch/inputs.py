"""Reading the rows of a batch job: input specs to files, files to ``(file, line, text, error)``
rows, lazily and in order, with the reading options taken from the pipeline."""

from __future__ import annotations

import codecs
import collections
import glob
import itertools
import os
import zlib

from .. import readers
from ..conll import _iter_columns
from ..errors import BatchError, DataError

#: Input formats ``format="auto"`` chooses between, by file extension (after ``.gz``).
EXTENSION_FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".tsv": "tsv",
    ".csv": "csv",
    ".conll": "conll",
    ".bio": "conll",
    ".bmes": "conll",
}
INPUT_FORMATS = ("auto", "text", "jsonl", "tsv", "csv", "conll")
#: Rows read, tokenized and committed together.
DEFAULT_CHUNK_SIZE = 2048
_ENCODING_HINT = "fix or re-encode the line, or give the file's encoding with --encoding"


def resolve_inputs(inputs) -> list[str]:
    """Expand input specs (files, folders, glob patterns) into an ordered list of files.

    Folders are walked recursively in sorted order, skipping hidden files and folders; glob
    patterns (``*``, ``?``, ``[...]``, ``**``) are expanded and sorted. Duplicates are kept
    once, at their first place.

    Raises:
        FileNotFoundError: a path that does not exist or a pattern that matches no file.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for spec in inputs:
        spec = os.fspath(spec)
        if os.path.isdir(spec):
            found = []
            for root, dirs, names in os.walk(spec):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith("."))
            if not found:
                raise FileNotFoundError(f"Input folder {spec} holds no files")
            files.extend(found)
        elif glob.has_magic(spec):
            found = sorted(f for f in glob.glob(spec, recursive=True) if not os.path.isdir(f))
            if not found:
                raise FileNotFoundError(f"Input pattern {spec!r} matches no files")
            files.extend(found)
        elif os.path.lexists(spec):
            files.append(spec)
        else:
            raise FileNotFoundError(f"Input {spec} does not exist (give files, folders or glob patterns)")
    return list(dict.fromkeys(files))


def detect_format(path: str, default: str = "text") -> str:
    """The input format of ``path`` from its extension (``.gz`` looked through)."""
    name = path.removesuffix(".gz")
    return EXTENSION_FORMATS.get(os.path.splitext(name)[1].lower(), default)


class _Position:
    """Bytes of input read so far, across files (compressed bytes for gzip files)."""

    def __init__(self):
        self.done = 0  # bytes of the files already finished
        self.file = None  # the raw file object being read

    def __call__(self) -> int:
        current = 0
        if self.file is not None:
            try:
                current = self.file.tell()
            except (OSError, ValueError):
                current = 0
        return self.done + current


def _error_row(path, lineno, message):
    return (path, lineno, None, message)


def _read_lines(path, encoding, position, stats):
    """Yield ``(line_number, line)`` of one file (``readers.open_text_lines``: lines end at
    ``\n``, ``\r\n`` or ``\r``); a line that cannot be decoded, or the point where a file stops
    being readable (truncated gzip, I/O error), is yielded as a ``readers._BadLine`` holding a
    DataError so the row parsers pass it on as an error row."""

    def opened(raw):
        position.file = raw

    lines = readers.open_text_lines(path, encoding, report_errors=True, hint=_ENCODING_HINT, on_open=opened)
    for lineno, line in lines:
        if isinstance(line, DataError):
            if getattr(line, "cut_short", False):
                stats["files_cut_short"] += 1
            line = readers._BadLine(line)
        yield lineno, line


_PARSERS = {
    "text": readers._iter_text,
    "jsonl": readers._iter_jsonl,
    "tsv": readers._iter_delimited,
    "csv": readers._iter_delimited,
}


def _file_rows(path, fmt, read_options, position, stats, conll_reader):
    """The rows of one file (``iter_rows`` turns what this raises into the file's error row)."""
    if fmt == "conll":
        if conll_reader is None:
            raise DataError(
                f"{path}: CoNLL input needs a sequence-tagging pipeline that reads CoNLL files "
                "(this pipeline has no CoNLL reader); give plain text, JSONL, TSV or CSV instead"
            )
        for lineno, tokens, error in conll_reader(path):
            yield (path, lineno, None, error) if error else (path, lineno, tokens, None)
        return
    lines = _read_lines(path, read_options.get("encoding", "utf-8"), position, stats)
    options = {
        "format": fmt,
        "text_column": read_options.get("text_column", "text"),
        "header": read_options.get("header", True),
    }
    for lineno, text, err in _PARSERS[fmt](path, lines, options, False, stats):
        if text is None:
            yield _error_row(path, lineno, str(err))
        else:
            yield (path, lineno, text, None)


def iter_rows(files, read_options: dict, position=None, stats=None, conll_reader=None):
    """Yield one ``(file, line, text, error)`` row per input row of ``files``, in order.

    ``text`` is the string to predict (a list of tokens for CoNLL input), or None when
    ``error`` (a message naming file and line) says why the row cannot be predicted. A file
    that cannot be opened gives one error row with line 0.

    Args:
        files: paths, as from ``resolve_inputs``.
        read_options: ``format`` (``auto`` or one of ``INPUT_FORMATS``), ``text_column``,
            ``header`` and ``encoding``.
        position: a ``_Position`` to keep up to date (progress by bytes), or None.
        stats: a Counter for ``files``, ``file_errors``, ``blank_lines_skipped`` and
            ``files_cut_short``, or None.
        conll_reader: ``callable(path) -> iterable of (line, tokens, error)`` for CoNLL
            files (from the tagging pipeline's reader), or None.
    """
    position = position if position is not None else _Position()
    stats = stats if stats is not None else collections.Counter()
    fmt_option = read_options.get("format", "auto")
    for path in files:
        stats["files"] += 1
        fmt = detect_format(path) if fmt_option == "auto" else fmt_option
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        try:
            yield from _file_rows(path, fmt, read_options, position, stats, conll_reader)
        except (OSError, EOFError, zlib.error, DataError) as err:
            # Unreadable file (permissions, a broken link...) or a file-level format problem
            # (e.g. the text column is not in its header): one error row, then the next file.
            stats["file_errors"] += 1
            message = str(err)
            if isinstance(err, (OSError, EOFError, zlib.error)):
                message = f"{path}: cannot read the file: {getattr(err, 'strerror', None) or err or type(err).__name__}"
            yield _error_row(path, getattr(err, "lineno", None) or 0, message)
        finally:
            position.done += size
            position.file = None


def _chunked(rows, size):
    while True:
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        yield chunk


def read_options_for(pipeline, format=None, text_column=None, header=None, encoding=None) -> dict:
    """Input reading options: the arguments given, else the pipeline's ``data`` section."""
    data = getattr(pipeline, "data", {}) or {}
    fmt = format or "auto"
    if fmt not in INPUT_FORMATS:
        raise BatchError(f"format must be one of {', '.join(INPUT_FORMATS)}; got {fmt!r}")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise BatchError(f"encoding {encoding!r} is not a text encoding Python knows (e.g. utf-8, gbk, utf-16)") from None
    column = text_column if text_column is not None else data.get("text_column", "text")
    if isinstance(column, str) and column.isdigit():
        column = int(column)
    return {
        "format": fmt,
        "text_column": column,
        "header": data.get("header", True) if header is None else bool(header),
        "encoding": encoding or data.get("encoding", "utf-8"),
    }


def _conll_reader(pipeline):
    """A streaming CoNLL reader for tagging pipelines: ``path -> (line, tokens, error)``, the
    tagging family's column reader with the pipeline's ``data`` options; None for pipelines
    that do not tag tokens."""
    if getattr(pipeline, "task", None) != "tagging":
        return None
    options = dict(getattr(pipeline, "data", {}) or {})
    if options.get("format") not in ("conll", "char"):
        options["format"] = "conll"

    def read(path):
        for lineno, tokens, _, error in _iter_columns(path, options, False):
            yield lineno, tokens, (None if error is None else str(error))

    return read
