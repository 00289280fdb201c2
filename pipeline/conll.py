"""Readers for tagged corpora: CoNLL column files, char-per-line files and JSONL.

Three formats (``data.format``):

- ``conll``: one token per line, columns split on whitespace (or ``data.separator``); the token
  is in ``data.token_column`` (default 0) and its tag in ``data.tag_column`` (default -1, the
  last column). A blank line ends a sentence; a ``-DOCSTART-`` line marks a document break and
  is not a sentence. CoNLL-2003: ``token POS chunk NER``.
- ``char``: the same layout with one character per line (``char tag``), as Chinese corpora such
  as Resume NER are written; the sentence's text is its characters joined without spaces.
- ``jsonl``: one JSON object per line, either pre-tokenized ``{"tokens": [...], "tags": [...]}``
  (keys ``data.token_column`` / ``data.tag_column``) or raw text with entity spans at character
  offsets ``{"text": "...", "entities": [{"start": 0, "end": 2, "type": "PER"}, ...]}`` (keys
  ``data.text_key`` / ``data.entities_key``; an entity may also be ``[start, end, type]``).

Every error names the file and line. Bad sentences raise ``DataError`` by default; with
``data.on_error: skip`` the whole sentence is left out and listed in ``corpus.skipped``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stages.base import check_choice, check_str

from stages.errors import short_repr

from .errors import ConfigError, DataError
from .readers import Corpus, json_line, open_text_lines
from stages.tag_schemes import SCHEMES, parse_tag

DOCSTART = "-DOCSTART-"
FORMATS = ("conll", "char", "jsonl")


def _column(name, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value):
        raise ConfigError(
            name, "must be a column number (0-based; negative counts from the end), a JSONL key, or null for the format's default", value
        )


def _separator(name, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(name, "must be a non-empty string, or null to split on any whitespace", value)


#: The tagging family's ``data`` options (see ``Pipeline.data_options``).
TAGGING_DATA = {
    "format": ("conll", lambda n, v: check_choice(n, v, FORMATS)),
    "token_column": (None, _column),
    "tag_column": (None, _column),
    "separator": (None, _separator),
    "scheme": ("bio", lambda n, v: check_choice(n, v, SCHEMES)),
    "text_key": ("text", check_str),
    "entities_key": ("entities", check_str),
    "long_sentences": ("split", lambda n, v: check_choice(n, v, ("split", "truncate"))),
}

_DEFAULT_COLUMNS = {"conll": (0, -1), "char": (0, -1), "jsonl": ("tokens", "tags")}


@dataclass
class TaggedCorpus(Corpus):
    """Sentences with their tags or entity spans, as read from one file.

    ``texts[i]`` is a list of tokens (column formats, pre-tokenized JSONL) with ``labels[i]``
    its tags in ``data.scheme``; or a raw string (JSONL text) with ``labels[i]`` a list of
    ``{"start", "end", "type"}`` entity spans at character offsets. ``lines[i]`` is the line
    where sentence ``i`` starts.
    """

    lines: list = field(default_factory=list)
    #: ``"char"`` when the tokens are characters to be joined without spaces, else ``"word"``.
    unit: str = "word"


def read_tagged(path: str, options: dict, need_tags: bool = True) -> TaggedCorpus:
    """Read a tagged corpus with the ``data`` section options.

    Args:
        path: the file (``.gz`` is read transparently).
        options: the ``data`` section (``format``, columns, ``scheme``, ``on_error`` ...).
        need_tags: read tags (or entity spans); when false only the tokens / text are needed.

    Example:
        >>> # read_tagged("train.txt", {"format": "conll", "scheme": "bio"}).texts[0]
    """
    fmt = options.get("format", "conll")
    corpus = TaggedCorpus(labels=[] if need_tags else None, path=path, unit="char" if fmt == "char" else "word")
    source = _iter_jsonl if fmt == "jsonl" else _iter_columns
    skip = options.get("on_error", "raise") == "skip"
    for lineno, text, label, error in source(path, options, need_tags):
        if error is not None:
            if not skip:
                raise error
            corpus.skipped.append((path, lineno, str(error)))
            continue
        corpus.texts.append(text)
        corpus.lines.append(lineno)
        if need_tags:
            corpus.labels.append(label)
    if not corpus.texts:
        raise DataError(f"{path}: no sentences were read (check data.format and the column options)")
    return corpus


def _iter_columns(path, options, need_tags):
    fmt = options.get("format", "conll")
    token_col, tag_col = (
        options.get("token_column") if options.get("token_column") is not None else _DEFAULT_COLUMNS[fmt][0],
        options.get("tag_column") if options.get("tag_column") is not None else _DEFAULT_COLUMNS[fmt][1],
    )
    if isinstance(token_col, str) or isinstance(tag_col, str):
        raise DataError(f"{path}: data.token_column / data.tag_column must be column numbers for the {fmt} format")
    sep = options.get("separator")
    scheme = options.get("scheme", "bio")
    needed = max(_width(token_col), _width(tag_col) if need_tags else 0)
    tokens, tags, start, error = [], [], None, None

    def finish():
        if start is None:
            return None
        return (start, tokens, tags if need_tags else None, error)

    for lineno, line in open_text_lines(path, options.get("encoding", "utf-8"), report_errors=True):
        if isinstance(line, DataError):
            if start is None:
                start = lineno
            error = error or line
            continue
        if not line.strip():
            done = finish()
            if done:
                yield done
            tokens, tags, start, error = [], [], None, None
            continue
        if fmt == "char" and line[0].isspace() and line.strip():
            # A whitespace character is itself the token: ``" O"``.
            columns = [line[0]] + (line[1:].split(sep) if sep else line[1:].split())
        else:
            columns = line.split(sep) if sep else line.split()
        if columns and columns[0] == DOCSTART:
            done = finish()
            if done:
                yield done
            tokens, tags, start, error = [], [], None, None
            continue
        if start is None:
            start = lineno
        if error is not None:
            continue  # the rest of a bad sentence
        if len(columns) < needed:
            error = DataError.at(
                path,
                lineno,
                f"expected at least {needed} columns (token column {token_col}"
                + (f", tag column {tag_col}" if need_tags else "")
                + f"), found {len(columns)}: {short_repr(line, 120)}; fix the line or set data.token_column / data.tag_column",
            )
            continue
        tokens.append(columns[token_col])
        if need_tags:
            tag = columns[tag_col]
            try:
                parse_tag(tag, scheme)
            except DataError as err:
                error = DataError.at(path, lineno, str(err))
                continue
            tags.append(tag)
    done = finish()
    if done:
        yield done


def _width(column: int) -> int:
    return column + 1 if column >= 0 else -column


def _iter_jsonl(path, options, need_tags):
    token_key = options.get("token_column") or "tokens"
    tag_key = options.get("tag_column") or "tags"
    text_key = options.get("text_key", "text")
    spans_key = options.get("entities_key", "entities")
    scheme = options.get("scheme", "bio")
    for lineno, line in open_text_lines(path, options.get("encoding", "utf-8"), report_errors=True):
        if isinstance(line, DataError):
            yield lineno, None, None, line
            continue
        if not line.strip():
            continue
        try:
            obj = json_line(line)
        except ValueError as err:
            yield lineno, None, None, DataError.at(path, lineno, str(err))
            continue
        try:
            yield (lineno, *_record(obj, token_key, tag_key, text_key, spans_key, scheme, need_tags), None)
        except ValueError as err:
            yield lineno, None, None, DataError.at(path, lineno, str(err))


def _record(obj, token_key, tag_key, text_key, spans_key, scheme, need_tags):
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    if token_key in obj:
        tokens = obj[token_key]
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise ValueError(f"{token_key!r} must be a list of non-empty strings")
        if not need_tags:
            return tokens, None
        tags = obj.get(tag_key)
        if not isinstance(tags, list) or len(tags) != len(tokens):
            raise ValueError(
                f"{tag_key!r} must be a list with one tag per token ({len(tokens)} tokens, "
                f"{len(tags) if isinstance(tags, list) else 'no'} tags)"
            )
        for tag in tags:
            parse_tag(tag, scheme)
        return tokens, list(tags)
    if isinstance(obj.get(text_key), str):
        text = obj[text_key]
        if not need_tags:
            return text, None
        return text, check_spans(text, obj.get(spans_key, []), spans_key)
    raise ValueError(
        f"needs either {token_key!r} (a token list, data.token_column) or {text_key!r} (raw text, data.text_key)"
    )


def check_spans(text: str, entities, key: str = "entities") -> list[dict]:
    """Validate entity spans at character offsets of ``text``; returns them as sorted dicts.

    Raises:
        ValueError: a span is malformed, lies outside the text, is empty, or overlaps another.
    """
    if not isinstance(entities, list):
        raise ValueError(f"{key!r} must be a list of entities")
    spans = []
    for e in entities:
        if isinstance(e, dict):
            start, end, type_ = e.get("start"), e.get("end"), e.get("type", e.get("label"))
        elif isinstance(e, (list, tuple)) and len(e) == 3:
            start, end, type_ = e
        else:
            raise ValueError(f"entity {short_repr(e, 120)} must be {{'start', 'end', 'type'}} or [start, end, type]")
        if isinstance(start, bool) or isinstance(end, bool) or not isinstance(start, int) or not isinstance(end, int):
            raise ValueError(f"entity {short_repr(e, 120)}: start and end must be integer character offsets")
        if not isinstance(type_, str) or not re.fullmatch(r"[^\s]+", type_):
            raise ValueError(f"entity {short_repr(e, 120)}: type must be a non-empty string without spaces")
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"entity {short_repr(e, 120)} lies outside the text (it has {len(text)} characters; spans are [start, end) offsets with start < end)"
            )
        spans.append({"start": start, "end": end, "type": type_})
    spans.sort(key=lambda s: (s["start"], s["end"]))
    for a, b in zip(spans, spans[1:]):
        if b["start"] < a["end"]:
            raise ValueError(
                f"entities {a['start']}-{a['end']} {a['type']!r} and {b['start']}-{b['end']} {b['type']!r} overlap; "
                "nested entities are not supported: keep one"
            )
    return spans


def write_conll(path: str, sentences, tag_sequences=None, separator: str = " ") -> str:
    """Write sentences (token lists) and optional tags as a two-column CoNLL file."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i, tokens in enumerate(sentences):
            tags = tag_sequences[i] if tag_sequences is not None else None
            for j, token in enumerate(tokens):
                f.write(token if tags is None else f"{token}{separator}{tags[j]}")
                f.write("\n")
            f.write("\n")
    return path
