"""Corpus readers: TSV / CSV, JSONL, ``label text`` lines (fastText / SST style) and plain text.

Every reader yields records with the file's 1-based line number, so an error names the file and
the line. Malformed rows raise ``DataError`` by default; with ``on_error: skip`` they are
counted and listed in ``Corpus.skipped`` instead (never dropped silently).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field

from .errors import DataError


@dataclass
class Corpus:
    """Texts with optional labels, as read from one file."""

    texts: list = field(default_factory=list)
    labels: list | None = None
    #: ``(path, line, reason)`` of each row skipped with ``on_error: skip``.
    skipped: list = field(default_factory=list)
    path: str = ""

    def __len__(self):
        return len(self.texts)


def open_text_lines(path: str, encoding: str = "utf-8", report_errors: bool = False):
    """Yield ``(line_number, line)`` with the newline removed.

    Gzip files (``.gz``) are read transparently. Decoding is per line so an error can name it:
    an undecodable line raises DataError, or with ``report_errors`` is yielded as
    ``(line_number, DataError)`` so the caller can report it and go on.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as err:
                bad = _error(
                    path,
                    lineno,
                    f"not valid {encoding} (byte {raw[err.start]:#04x} at column {err.start + 1}); "
                    "fix or re-encode the file, or set data.on_error: skip",
                )
                if not report_errors:
                    raise bad from None
                yield lineno, bad
                continue
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield lineno, line.rstrip("\r\n")


def iter_records(path: str, options: dict, need_labels: bool = True):
    """Yield ``(line_number, text, label)`` from ``path`` read with the ``data`` section options.

    ``label`` is None when ``need_labels`` is false or the format has none. A bad row raises
    DataError naming file and line; with ``on_error: skip`` it is yielded as
    ``(line_number, None, DataError)`` instead, for the caller to count and report.
    """
    fmt = options.get("format", "tsv")
    reader = {
        "tsv": _iter_delimited,
        "csv": _iter_delimited,
        "jsonl": _iter_jsonl,
        "fasttext": _iter_fasttext,
        "text": _iter_text,
    }[fmt]
    skip = options.get("on_error", "raise") == "skip"
    need_labels = need_labels and fmt != "text"
    lines = open_text_lines(path, options.get("encoding", "utf-8"), report_errors=True)
    for lineno, text, label in reader(path, _pass_errors(lines), options, need_labels):
        if isinstance(label, DataError):
            bad = label
        elif need_labels:
            try:
                label = _parse_label(path, lineno, label, options)
                bad = None
            except DataError as err:
                bad = err
        else:
            bad = None
        if bad is None:
            yield lineno, text, label
        elif skip:
            yield lineno, None, bad
        else:
            raise bad


class _BadLine:
    def __init__(self, error):
        self.error = error


def _pass_errors(lines):
    for lineno, line in lines:
        yield lineno, (_BadLine(line) if isinstance(line, DataError) else line)


def _error(path, lineno, message):
    err = DataError(f"{path}:{lineno}: {message}")
    err.path = path
    err.lineno = lineno
    return err


def _parse_label(path, lineno, label, options):
    if label is None or (isinstance(label, str) and not label.strip()):
        raise _error(path, lineno, "the label is missing; fix the row, or set data.on_error: skip")
    sep = options.get("label_separator")
    if isinstance(label, list):
        return [str(x) for x in label]
    label = str(label).strip()
    if sep:
        return [x.strip() for x in label.split(sep) if x.strip()]
    return label


def _column_index(path, header, column, what):
    if isinstance(column, int):
        return column
    if header is None:
        raise DataError(f"{path}: data.{what} is the name {column!r} but data.header is false; give a column number")
    if column not in header:
        raise DataError(f"{path}:1: data.{what} {column!r} is not in the header columns {header}")
    return header.index(column)


def _iter_delimited(path, lines, options, need_labels):
    fmt = options.get("format", "tsv")
    # TSV is split on tabs alone (texts may hold quote characters); CSV follows RFC 4180 quoting.
    if fmt == "csv":
        rows = _csv_rows(path, lines)
    else:
        rows = ((n, line if isinstance(line, _BadLine) else line.split("\t")) for n, line in lines)
    header = None
    width = None
    text_idx = label_idx = None
    for lineno, row in rows:
        if isinstance(row, _BadLine):
            yield lineno, None, row.error
            continue
        if header is None and options.get("header", True):
            header = [c.strip() for c in row]
            width = len(header)
            continue
        if row == [""] or not any(row):
            continue  # blank line
        if width is None:
            width = len(row)
        if text_idx is None:
            text_idx = _column_index(path, header, options.get("text_column", "text"), "text_column")
            if need_labels:
                label_idx = _column_index(path, header, options.get("label_column", "label"), "label_column")
        if len(row) != width:
            yield lineno, None, _error(path, lineno, f"expected {width} {fmt.upper()} columns, found {len(row)}")
            continue
        if text_idx >= width or (label_idx is not None and label_idx >= width):
            raise DataError(f"{path}: rows have {width} columns; data.text_column / data.label_column is out of range")
        yield lineno, row[text_idx], (row[label_idx] if label_idx is not None else None)


def _csv_rows(path, lines):
    # Feed csv.reader decoded lines while remembering where each record starts.
    buffer = []
    start = None
    for lineno, line in lines:
        if isinstance(line, _BadLine):
            yield lineno, line
            continue
        if start is None:
            start = lineno
        buffer.append(line)
        text = "\n".join(buffer)
        if text.count('"') % 2:
            continue  # a quoted field goes on over the next line
        yield start, next(csv.reader(io.StringIO(text)), [""])
        buffer, start = [], None
    if buffer:
        yield start, _BadLine(_error(path, start, "a quoted field is not closed before the end of the file"))


def _iter_jsonl(path, lines, options, need_labels):
    text_key = options.get("text_column", "text")
    label_key = options.get("label_column", "label")
    for lineno, line in lines:
        if isinstance(line, _BadLine):
            yield lineno, None, line.error
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield lineno, None, _error(path, lineno, f"not valid JSON ({err.msg})")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get(text_key), str):
            yield lineno, None, _error(path, lineno, f"needs a string field {text_key!r} (data.text_column)")
            continue
        yield lineno, obj[text_key], (obj.get(label_key) if need_labels else None)


def _iter_fasttext(path, lines, options, need_labels):
    prefix = options.get("label_prefix", "")
    for lineno, line in lines:
        if isinstance(line, _BadLine):
            yield lineno, None, line.error
            continue
        if not line.strip():
            continue
        if not need_labels:
            yield lineno, line, None
            continue
        parts = line.split(" ")
        if prefix:
            labels = []
            while parts and parts[0].startswith(prefix):
                labels.append(parts.pop(0)[len(prefix):])
            if not labels:
                yield lineno, None, _error(path, lineno, f"does not start with a label ({prefix}LABEL)")
                continue
            label = labels if len(labels) > 1 else labels[0]
        else:
            if len(parts) < 2:
                yield lineno, None, _error(path, lineno, "expected '<label> <text>'")
                continue
            label = parts.pop(0)
        yield lineno, " ".join(parts), label


def _iter_text(path, lines, options, need_labels):
    for lineno, line in lines:
        if isinstance(line, _BadLine):
            yield lineno, None, line.error
        else:
            yield lineno, line, None


def read_corpus(path: str, options: dict, need_labels: bool = True) -> Corpus:
    """Read a whole file into a Corpus (texts, labels, skipped rows).

    Example:
        >>> # corpus = read_corpus("train.tsv", {"format": "tsv", "text_column": "text_a"})
    """
    corpus = Corpus(labels=[] if need_labels and options.get("format") != "text" else None, path=path)
    for lineno, text, label in iter_records(path, options, need_labels):
        if text is None:
            corpus.skipped.append((path, lineno, str(label)))
            continue
        corpus.texts.append(text)
        if corpus.labels is not None:
            corpus.labels.append(label)
    if not corpus.texts:
        raise DataError(f"{path}: no rows were read (check data.format and the column options)")
    return corpus
