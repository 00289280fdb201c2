"""Corpus readers: TSV / CSV, JSONL, ``label text`` lines (fastText / SST style) and plain text.

Every reader yields records with the file's 1-based line number, so an error names the file and
the line. Malformed rows raise ``DataError`` by default; with ``on_error: skip`` they are
counted and listed in ``Corpus.skipped`` instead (never dropped silently).

Rules shared by every reader of the project (these, ``ktp predict``, the tagging and parallel
readers), so that every input row comes out as a row or an error row:

- **Lines** end at ``\n``, ``\r\n`` or a lone ``\r`` (``split_lines``), so CR-only, CRLF and
  mixed files have the same lines and line numbers as LF files. A UTF-8 byte-order mark is
  dropped; gzip files (``.gz``) are read transparently.
- **A file that stops being readable** (a truncated or fake gzip file, an I/O error) gives every
  complete line before that point, then one error naming the line. A file that cannot be opened
  (missing, a folder, no permission, a symlink loop, a FIFO) is a DataError naming it.
- **CSV** (``CsvRecords``): RFC 4180 quoting as Python's ``csv`` reads it; a quoted field may
  hold line breaks, but a record that runs over several lines is kept only if its quote closes
  properly (followed by a comma or the end of a line) within ``MAX_CSV_RECORD_LINES`` lines and
  the record has the file's column count. Otherwise the quote is a stray one: its line is an
  error row and reading resumes on the next line, so one unbalanced quote never swallows the
  rows after it. A quote inside an unquoted field (``the 5" screen``) is a plain character.
"""

from __future__ import annotations

import codecs
import collections
import errno
import gzip
import io
import json
import os
import re
import stat
import zlib
from dataclasses import dataclass, field

from stages.errors import short_repr

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


#: Lines end at ``\n``, ``\r\n`` or a lone ``\r`` (Python's universal newlines), in every reader.
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_READ_BLOCK = 1 << 16
#: Encodings whose line breaks are not single ``\n`` / ``\r`` bytes: read as a decoded stream.
_WIDE_ENCODINGS = ("utf-16", "utf-32")
ON_ERROR_HINT = "fix or re-encode the file, or set data.on_error: skip"


def split_lines(f, block: int = _READ_BLOCK):
    """Yield the lines of the binary file ``f`` without their line breaks.

    ``\n``, ``\r\n`` and a lone ``\r`` each end a line, so a file with old Mac (CR-only) line
    endings has as many lines as the same file with LF or CRLF endings, and line numbers count
    the same. A final line break does not start an empty last line. Reads ``block`` bytes at a
    time with ``read1``, so a read error (a truncated gzip stream) comes after every complete
    line before it has been given out.
    """
    read = getattr(f, "read1", f.read)
    pending = b""
    while True:
        data = read(block)
        if not data:
            break
        if pending:
            data = pending + data
        # A final \r may be the first half of \r\n: keep it until the next block is seen.
        hold_cr = data.endswith(b"\r")
        parts = _LINE_BREAK.split(data[:-1] if hold_cr else data)
        pending = parts.pop() + (b"\r" if hold_cr else b"")
        yield from parts
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending


def _os_reason(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, IsADirectoryError):
        return "it is a folder, not a file"
    if isinstance(err, PermissionError):
        return "permission denied"
    if getattr(err, "errno", None) == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop?)"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def open_binary(path: str):
    """Open ``path`` for reading bytes (gzip files, ``.gz``, decompressed), or raise a DataError
    naming the file and why it cannot be read (missing, a folder, no permission, a symlink
    loop, not a regular file)."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not stat.S_ISREG(mode):
            # Opening a FIFO would wait for a writer; a device may never end.
            raise DataError(f"{path}: cannot read the file: it is not a regular file", path=path, lineno=0)
        f = open(path, "rb")
    except OSError as err:
        raise DataError(f"{path}: cannot read the file: {_os_reason(err)}", path=path, lineno=0) from None
    return gzip.GzipFile(fileobj=f, mode="rb") if path.endswith(".gz") else f


def _is_wide(encoding: str) -> bool:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return name.startswith(_WIDE_ENCODINGS)


def open_text_lines(path: str, encoding: str = "utf-8", report_errors: bool = False, hint: str = ON_ERROR_HINT,
                    on_open=None):
    """Yield ``(line_number, line)`` with the line break removed.

    Gzip files (``.gz``) are read transparently; lines end at ``\n``, ``\r\n`` or ``\r``
    (``split_lines``). Decoding is per line so an error can name it: an undecodable line raises
    DataError, or with ``report_errors`` is yielded as ``(line_number, DataError)`` so the caller
    can report it and go on. A file that stops being readable part way (a truncated or corrupt
    gzip stream, an I/O error) ends with one such error, whose ``cut_short`` attribute is True.

    Args:
        path: the file.
        encoding: its text encoding.
        report_errors: yield bad lines as DataErrors instead of raising.
        hint: what an undecodable line's message advises.
        on_open: called with the raw (compressed) file object once open, e.g. to track progress.

    Raises:
        DataError: the file cannot be opened (always raised, naming the file and the reason).
    """
    f = open_binary(path)
    if on_open is not None:
        on_open(getattr(f, "fileobj", None) or f)
    lineno = 0
    with f:
        try:
            if _is_wide(encoding):
                # UTF-16 / UTF-32: line breaks are not single bytes, so decode the stream.
                text = io.TextIOWrapper(f, encoding=encoding, errors="strict", newline=None)
                for line in text:
                    lineno += 1
                    if lineno == 1 and line.startswith("\ufeff"):
                        line = line[1:]
                    yield lineno, line.rstrip("\n")
                return
            for raw in split_lines(f):
                lineno += 1
                try:
                    line = raw.decode(encoding)
                except UnicodeDecodeError as err:
                    bad = DataError.at(
                        path,
                        lineno,
                        f"not valid {encoding} (byte {raw[err.start]:#04x} at column {err.start + 1}); {hint}",
                    )
                    bad.text = raw.decode(encoding, errors="replace")  # for readers that need its shape
                    if not report_errors:
                        raise bad from None
                    yield lineno, bad
                    continue
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield lineno, line
        except (EOFError, OSError, zlib.error, UnicodeDecodeError) as err:
            if isinstance(err, EOFError):
                reason = "the compressed file is truncated"
            elif isinstance(err, gzip.BadGzipFile):
                reason = f"it is not a gzip file ({err})"
            elif isinstance(err, UnicodeDecodeError):
                reason = f"not valid {encoding} ({err.reason}); {hint}"
            else:
                reason = str(err) or type(err).__name__
            where = f"past line {lineno}" if lineno else "at all"
            bad = DataError.at(path, lineno + 1, f"the file cannot be read {where}: {reason}")
            bad.cut_short = True
            if not report_errors:
                raise bad from None
            yield lineno + 1, bad


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


def json_line(line: str):
    """``json.loads`` of one line; every way it can fail (bad syntax, nesting too deep for
    Python, an integer too long to convert) raises ValueError with a short reason."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg})") from None
    except RecursionError:
        raise ValueError("not valid JSON here (it nests too deeply)") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise ValueError(f"not valid JSON here ({str(err)[:120]})") from None


def _parse_label(path, lineno, label, options):
    if label is None or (isinstance(label, str) and not label.strip()):
        raise DataError.at(path, lineno, "the label is missing; fix the row, or set data.on_error: skip")
    sep = options.get("label_separator")
    if isinstance(label, list):
        return [str(x) for x in label]
    label = str(label).strip()
    if sep:
        return [x.strip() for x in label.split(sep) if x.strip()]
    return label


def column_index(path, header, column, what):
    """The 0-based index of ``data.<what>``: a number as it is, a name looked up in ``header``
    (the file's first row, or None when ``data.header`` is false)."""
    if isinstance(column, int):
        return column
    if header is None:
        raise DataError(f"{path}: data.{what} is the name {column!r} but data.header is false; give a 0-based column number")
    if column not in header:
        raise DataError(f"{path}:1: data.{what} {column!r} is not one of the header columns {short_repr(header)}")
    return header.index(column)


def _blank(stats):
    if stats is not None:
        stats["blank_lines_skipped"] += 1


def _iter_delimited(path, lines, options, need_labels, stats=None):
    fmt = options.get("format", "tsv")
    # TSV is split on tabs alone (texts may hold quote characters); CSV follows RFC 4180 quoting
    # with the record rule of ``CsvRecords``.
    if fmt == "csv":
        rows = CsvRecords(path, lines)
    else:
        rows = ((n, line if isinstance(line, _BadLine) else line.split("\t")) for n, line in lines)
    header = None
    width = None
    text_idx = label_idx = None
    for lineno, row in rows:
        if isinstance(row, _BadLine):
            yield lineno, None, row.error
            continue
        if not any(row):
            _blank(stats)  # a blank line (or one of empty cells only), before or after the header
            continue
        if header is None and options.get("header", True):
            header = [c.strip() for c in row]
            width = len(header)
            if fmt == "csv":
                rows.width = width
            continue
        if width is None:
            width = len(row)
            if fmt == "csv":
                rows.width = width
        if text_idx is None:
            text_idx = column_index(path, header, options.get("text_column", "text"), "text_column")
            if need_labels:
                label_idx = column_index(path, header, options.get("label_column", "label"), "label_column")
        if len(row) != width:
            yield lineno, None, DataError.at(path, lineno, f"expected {width} {fmt.upper()} columns, found {len(row)}")
            continue
        if text_idx >= width or (label_idx is not None and label_idx >= width):
            raise DataError(f"{path}: rows have {width} columns; data.text_column / data.label_column is out of range")
        yield lineno, row[text_idx], (row[label_idx] if label_idx is not None else None)


#: The most lines one CSV record (a quoted field with line breaks in it) may span.
MAX_CSV_RECORD_LINES = 1000
_QUOTE_OR_COMMA = re.compile(r'[",]')


def csv_fields(text: str, quoted: bool = False) -> tuple[list[str], bool, bool]:
    """Split one CSV record into fields, as Python's ``csv`` module does with its default
    dialect (RFC 4180 quoting; a quote inside an unquoted field is a literal character; text
    after a closing quote is kept).

    Returns:
        ``(fields, open_quote, loose)``: ``open_quote`` is True when a quoted field is still open
        at the end of ``text``; ``loose`` when a closing quote was followed by something other
        than a comma or the end of the record (``"a"b``), which Python's csv also reads but
        which, in a record running over several lines, is the mark of a stray quote.

    Args:
        text: the record (line breaks inside quoted fields included).
        quoted: ``text`` starts inside a quoted field (a continuation line; its fields are
            then only of use for the flags).
    """
    fields, cell = [], []
    state = 2 if quoted else 0  # 0 field start, 1 unquoted field, 2 quoted field, 3 a quote in a quoted field
    loose = False
    pos = 0
    for m in _QUOTE_OR_COMMA.finditer(text):
        i = m.start()
        if i > pos:
            if state == 3:
                loose = True
            if state != 2:
                state = 1
            cell.append(text[pos:i])
        if text[i] == '"':
            if state == 0:
                state = 2
            elif state == 1:
                cell.append('"')
            elif state == 2:
                state = 3
            else:  # a doubled quote inside a quoted field
                cell.append('"')
                state = 2
        elif state == 2:
            cell.append(",")
        else:
            fields.append("".join(cell))
            cell, state = [], 0
        pos = i + 1
    if pos < len(text):
        if state == 3:
            loose = True
        if state != 2:
            state = 1
        cell.append(text[pos:])
    fields.append("".join(cell))
    return fields, state == 2, loose


class CsvRecords:
    """CSV records with the line each starts on, from ``(line_number, line)`` pairs; the one
    CSV rule of every reader (``read_corpus``, ``ktp predict``, parallel corpora).

    A quoted field may hold line breaks, so a record may run over several lines. A record that
    does is kept only when its quoted field closes properly (a quote followed by a comma or the
    end of a line) within ``MAX_CSV_RECORD_LINES`` lines and, once the column count is known
    (``width``, set by the caller after the header or first row), it has that many columns.
    Otherwise the quote is a stray one: the line it is on becomes an error row and reading goes
    on at the next line, so one unbalanced quote never swallows the rows after it.

    An undecodable line takes part in finding records (its quotes are seen through replacement
    characters), so a record with one is a single error row however many lines it spans.

    Yields ``(line_number, fields)``, or ``(line_number, _BadLine)`` for a row that cannot be
    read.
    """

    def __init__(self, path, lines, width=None, max_lines: int = MAX_CSV_RECORD_LINES):
        self.path = path
        self.lines = iter(lines)
        self.width = width
        self.max_lines = max_lines

    def __iter__(self):
        pending = collections.deque()

        def take():
            return pending.popleft() if pending else next(self.lines, None)

        def text_of(line):
            # An undecodable line still shows where its quotes are (``open_text_lines`` keeps
            # it decoded with replacement characters), so its record is found and is one error.
            return getattr(line.error, "text", None) if isinstance(line, _BadLine) else line

        while True:
            item = take()
            if item is None:
                return
            lineno, line = item
            first = text_of(line)
            if first is None:
                yield item  # a line that cannot be read at all (the file stops there)
                continue
            fields, open_quote, _ = csv_fields(first)
            if not open_quote:
                yield item if isinstance(line, _BadLine) else (lineno, fields)
                continue
            taken, why = [], None
            while True:
                if len(taken) + 1 >= self.max_lines:
                    why = f"is not closed within {self.max_lines} lines"
                    break
                nxt = take()
                if nxt is None:
                    why = "is not closed before the end of the file"
                    break
                taken.append(nxt)
                more = text_of(nxt[1])
                if more is None:
                    why = f"runs into line {nxt[0]}, which cannot be read"
                    break
                _, open_quote, loose = csv_fields(more, quoted=True)
                if loose:
                    why = f"is closed on line {nxt[0]} by a quote that is not followed by a comma or the end of the line"
                    break
                if not open_quote:
                    fields, _, loose = csv_fields("\n".join([first] + [text_of(t[1]) for t in taken]))
                    if loose:
                        why = f"runs to line {nxt[0]}, where a closing quote is not followed by a comma or the end of the line"
                    elif self.width is not None and len(fields) != self.width:
                        why = f"runs to line {nxt[0]}, and that record has {len(fields)} columns, not {self.width}"
                    break
            if why is None:
                bad = next((t for t in [item] + taken if isinstance(t[1], _BadLine)), None)
                if bad is None:
                    yield lineno, fields
                else:  # the whole record is one error row, for its undecodable line
                    yield lineno, _BadLine(
                        DataError(f"{bad[1].error} (in the CSV record that starts on line {lineno})", path=self.path, lineno=lineno)
                    )
                continue
            # A stray quote: this line is an error row; the lines read ahead are read again.
            pending.extendleft(reversed(taken))
            if isinstance(line, _BadLine):
                yield item
                continue
            yield lineno, _BadLine(
                DataError.at(
                    self.path,
                    lineno,
                    f"a quoted field starts on this line but {why}; close the quote (a quote inside a "
                    'quoted field is written "") or set data.on_error: skip',
                )
            )


def _per_line(parse):
    """A reader of one record a line from ``parse(path, lineno, line, options, need_labels)``,
    which gives ``(text, label)``, or ``(None, error)`` for a bad line. The reader passes an
    undecodable line on as an error row and counts and passes over a blank one."""

    def iterate(path, lines, options, need_labels, stats=None):
        for lineno, line in lines:
            if isinstance(line, _BadLine):
                yield lineno, None, line.error
            elif line.strip():
                yield (lineno, *parse(path, lineno, line, options, need_labels))
            else:
                _blank(stats)

    iterate.__name__ = iterate.__qualname__ = parse.__name__
    iterate.__doc__ = parse.__doc__
    return iterate


@_per_line
def _iter_jsonl(path, lineno, line, options, need_labels):
    """One JSON object a line, its text in ``text_column`` (and label in ``label_column``)."""
    text_key = options.get("text_column", "text")
    try:
        obj = json_line(line)
    except ValueError as err:
        return None, DataError.at(path, lineno, str(err))
    if not isinstance(obj, dict) or not isinstance(obj.get(text_key), str):
        return None, DataError.at(path, lineno, f"needs a string field {text_key!r} (data.text_column)")
    return obj[text_key], (obj.get(options.get("label_column", "label")) if need_labels else None)


@_per_line
def _iter_fasttext(path, lineno, line, options, need_labels):
    """fastText lines: labels first (with ``label_prefix``, several allowed), then the text."""
    if not need_labels:
        return line, None
    prefix = options.get("label_prefix", "")
    parts = line.split(" ")
    if prefix:
        labels = []
        while parts and parts[0].startswith(prefix):
            labels.append(parts.pop(0)[len(prefix):])
        if not labels:
            return None, DataError.at(path, lineno, f"does not start with a label ({prefix}LABEL)")
        label = labels if len(labels) > 1 else labels[0]
    else:
        if len(parts) < 2:
            return None, DataError.at(path, lineno, "expected '<label> <text>'")
        label = parts.pop(0)
    return " ".join(parts), label


def _iter_text(path, lines, options, need_labels, stats=None):
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
