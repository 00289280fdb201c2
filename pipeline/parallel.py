"""Parallel-corpus readers: two line-aligned files, or TSV / CSV with source and target columns.

- ``aligned``: ``PREFIX.<source_lang>`` and ``PREFIX.<target_lang>``, line i of one pairing
  with line i of the other (Multi30k's ``train.de`` / ``train.en``). Files of different
  lengths are an error naming the first line that has no partner.
- ``tsv`` / ``csv``: one pair a row; ``source_column`` and ``target_column`` are header names
  or 0-based numbers. Other columns (e.g. Tatoeba's attribution) are kept, per row, in
  ``ParallelCorpus.extra``.

Empty lines: a pair whose source or target is empty (after stripping spaces) is an error by
default (``data.on_empty: error``, naming file and line); with ``data.on_empty: skip`` it is left
out and listed in ``ParallelCorpus.skipped`` with the reason, and the pipeline logs how many.
Rows that cannot be read (bad encoding, wrong column count) follow ``data.on_error`` the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import DataError
from .readers import Corpus, CsvRecords, _BadLine, _pass_errors, column_index, open_text_lines


@dataclass
class ParallelCorpus(Corpus):
    """Source texts with their targets, as read from one parallel corpus (a ``Corpus``).

    Attributes:
        texts: the source sentences.
        labels: the target sentences (None when targets were not asked for).
        extra: other columns by name (header name, or ``column_<n>`` without a header), one
            value per kept pair, e.g. Tatoeba's attribution.
        skipped: ``(path, line, reason)`` of each pair left out.
        lines: the 1-based line number of each kept pair.
        path: what was read.
    """

    extra: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)


def aligned_paths(prefix: str, options: dict) -> tuple[str, str]:
    """``(PREFIX.<source_lang>, PREFIX.<target_lang>)``; the languages come from ``data``."""
    src, tgt = options.get("source_lang"), options.get("target_lang")
    if not src or not tgt:
        raise DataError(
            f"Reading aligned files from the prefix {prefix!r} needs data.source_lang and data.target_lang "
            "(the file suffixes, e.g. source_lang: de, target_lang: en for PREFIX.de and PREFIX.en)"
        )
    return f"{prefix}.{src}", f"{prefix}.{tgt}"


def read_parallel(path: str, options: dict, need_targets: bool = True) -> ParallelCorpus:
    """Read a parallel corpus with the ``data`` section's options.

    Args:
        path: a file (TSV / CSV, or with ``aligned`` and no targets, a file of source lines) or,
            for ``aligned``, the prefix of the two files.
        options: the validated ``data`` section (``format``, ``source_lang``, ``target_lang``,
            ``source_column``, ``target_column``, ``header``, ``encoding``, ``on_error``,
            ``on_empty``).
        need_targets: read the targets too (False: sources only, e.g. to translate a file).

    Returns:
        a ParallelCorpus.

    Example:
        >>> # read_parallel("/data/multi30k/val", {"format": "aligned", "source_lang": "de",
        >>> #               "target_lang": "en"}).labels[:1]
    """
    fmt = options.get("format", "aligned")
    if fmt == "aligned":
        corpus = _read_aligned(path, options, need_targets)
    else:
        corpus = _read_delimited(path, options, need_targets)
    if not corpus.texts:
        raise DataError(f"{path}: no sentence pairs were read (check data.format and the column options)")
    return corpus


def _keep_or_raise(corpus, err, options, key="on_error"):
    if options.get(key, "raise" if key == "on_error" else "error") == "skip":
        corpus.skipped.append((err.path, err.lineno, str(err)))
    else:
        raise err


def _read_aligned(path, options, need_targets):
    encoding = options.get("encoding", "utf-8")
    if not need_targets and os.path.isfile(path):
        src_path, tgt_path = path, None
    else:
        src_path, tgt_path = aligned_paths(path, options)
        for p in (src_path,) + ((tgt_path,) if need_targets else ()):
            if not os.path.isfile(p):
                raise DataError(f"{p}: no such file (reading aligned files with the prefix {path!r})")
        if not need_targets:
            tgt_path = None
    corpus = ParallelCorpus(labels=[] if tgt_path else None, path=path)
    src_lines = open_text_lines(src_path, encoding, report_errors=True)
    if tgt_path is None:
        for lineno, line in src_lines:
            if isinstance(line, DataError):
                _keep_or_raise(corpus, line, options)
            elif not line.strip():
                _keep_or_raise(corpus, DataError.at(src_path, lineno, _EMPTY_HINT.format(side="source")), options, "on_empty")
            else:
                corpus.texts.append(line)
                corpus.lines.append(lineno)
        return corpus
    tgt_lines = open_text_lines(tgt_path, encoding, report_errors=True)
    sentinel = (None, None)
    while True:
        s = next(src_lines, sentinel)
        t = next(tgt_lines, sentinel)
        if s is sentinel and t is sentinel:
            break
        if s is sentinel or t is sentinel:
            longer, line_no = (tgt_path, t[0]) if s is sentinel else (src_path, s[0])
            shorter = src_path if s is sentinel else tgt_path
            raise DataError(
                f"{longer}:{line_no}: has no partner line: {shorter} ends after {line_no - 1} lines. "
                "Line-aligned files must have the same number of lines"
            )
        lineno = s[0]
        bad = next((x for x in (s[1], t[1]) if isinstance(x, DataError)), None)
        if bad is not None:
            _keep_or_raise(corpus, bad, options)
            continue
        empty = [name for name, text, p in (("source", s[1], src_path), ("target", t[1], tgt_path)) if not text.strip()]
        if empty:
            where = src_path if empty[0] == "source" else tgt_path
            _keep_or_raise(corpus, DataError.at(where, lineno, _EMPTY_HINT.format(side=" and ".join(empty))), options, "on_empty")
            continue
        corpus.texts.append(s[1])
        corpus.labels.append(t[1])
        corpus.lines.append(lineno)
    return corpus


_EMPTY_HINT = "the {side} sentence is empty; fix the file, or set data.on_empty: skip to leave such pairs out"


def _delimited_rows(path, options):
    """``(line_number, fields or readers._BadLine)`` of a TSV / CSV file; CSV records follow the
    one rule of ``readers.CsvRecords`` (set its ``width`` once the column count is known)."""
    lines = _pass_errors(open_text_lines(path, options.get("encoding", "utf-8"), report_errors=True))
    if options.get("format") == "tsv":
        return ((n, line if isinstance(line, _BadLine) else line.split("\t")) for n, line in lines)
    return CsvRecords(path, lines)


def _read_delimited(path, options, need_targets):
    fmt = options.get("format", "tsv")
    corpus = ParallelCorpus(labels=[] if need_targets else None, path=path)
    header = None
    width = None
    src_idx = tgt_idx = None
    extra_idx = []
    rows = _delimited_rows(path, options)
    for lineno, row in rows:
        if isinstance(row, _BadLine):
            _keep_or_raise(corpus, row.error, options)
            continue
        if not any(c.strip() for c in row):
            continue  # a blank line between rows
        if header is None and options.get("header", True) and width is None:
            header = [c.strip() for c in row]
            width = len(header)
            if isinstance(rows, CsvRecords):
                rows.width = width
            continue
        if width is None:
            width = len(row)
            if isinstance(rows, CsvRecords):
                rows.width = width
        if src_idx is None:
            src_idx = column_index(path, header, options.get("source_column", "source"), "source_column")
            tgt_idx = column_index(path, header, options.get("target_column", "target"), "target_column") if need_targets else None
            for idx, what in ((src_idx, "source_column"), (tgt_idx, "target_column")):
                if idx is not None and idx >= width:
                    raise DataError(f"{path}: rows have {width} columns; data.{what} {idx} is out of range")
            used = {src_idx, tgt_idx}
            if not need_targets:
                # The target column, when there is one, is not "extra" data.
                try:
                    used.add(column_index(path, header, options.get("target_column", "target"), "target_column"))
                except DataError:
                    pass
            extra_idx = [i for i in range(width) if i not in used]
            for i in extra_idx:
                corpus.extra[header[i] if header else f"column_{i}"] = []
        if len(row) != width:
            _keep_or_raise(corpus, DataError.at(path, lineno, f"expected {width} {fmt.upper()} columns, found {len(row)}"), options)
            continue
        src = row[src_idx]
        tgt = row[tgt_idx] if tgt_idx is not None else None
        empty = [name for name, text in (("source", src), ("target", tgt)) if text is not None and not text.strip()]
        if empty:
            _keep_or_raise(corpus, DataError.at(path, lineno, _EMPTY_HINT.format(side=" and ".join(empty))), options, "on_empty")
            continue
        corpus.texts.append(src)
        if tgt_idx is not None:
            corpus.labels.append(tgt)
        corpus.lines.append(lineno)
        for i in extra_idx:
            corpus.extra[header[i] if header else f"column_{i}"].append(row[i])
    return corpus
