"""The project's exception hierarchy: one root, ``KtpError``, and a few classes under it that
also keep a builtin base, so callers can catch either (``except ValueError`` still catches a
``ConfigError``).

It lives in ``stages`` (the lower layer) because stages raise these errors too; ``pipeline``
re-exports it as ``pipeline.errors``.

Example:
    >>> from stages.errors import ConfigError, KtpError
    >>> issubclass(ConfigError, KtpError) and issubclass(ConfigError, ValueError)
    True
"""

from __future__ import annotations

import difflib


class KtpError(Exception):
    """The root of every error this project raises on purpose (bad configs, data, use before
    fitting, failed exports, batch jobs). The command line turns each into a one-line message
    and an exit code; anything else is a bug."""


class ConfigError(KtpError, ValueError):
    """A pipeline or stage configuration is invalid.

    The message names the config path, what was wrong and what is allowed, e.g.
    ``stages.vocabulary.max_size must be an integer >= 1. Received: max_size=-3``.

    Args:
        key: the option name (last element of the path).
        requirement: what the option must be, phrased to follow the path.
        received: the value received (``...`` when there is none to show).
        path: the config path before ``key`` (e.g. ``"stages.vocabulary"``).
    """

    _NOTHING = object()

    def __init__(self, key: str, requirement: str, received=_NOTHING, path: str = ""):
        self.key = key
        self.requirement = requirement
        self.received = received
        self.path = path
        super().__init__(self._format())

    def _format(self) -> str:
        full = ".".join(p for p in (self.path, self.key) if p)
        msg = f"{full} {self.requirement}" if full else self.requirement
        if self.received is not ConfigError._NOTHING:
            name = self.key.split(".")[-1] if self.key else "value"
            msg += f". Received: {name}={short_repr(self.received)}"
        return msg

    def under(self, prefix: str) -> "ConfigError":
        """Return the same error with ``prefix`` put in front of its path."""
        path = ".".join(p for p in (prefix, self.path) if p)
        return ConfigError(self.key, self.requirement, self.received, path)


#: About how many characters of a received value an error message shows.
REPR_LIMIT = 200
_MAX_REPR_DEPTH = 20


class _Full(Exception):
    pass


def one_line(err, limit: int = 400) -> str:
    """An error's message on one line, at most ``limit`` characters (Keras' are paragraphs)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def short_repr(value, limit: int = REPR_LIMIT) -> str:
    """``repr(value)``, cut at ``limit`` characters with a note saying so.

    Containers are walked only as far as needed, so a huge value (or one that a YAML alias
    repeats a billion times over) costs no more than ``limit`` characters of work, and a value
    nested deeper than 20 levels shows ``...`` below that.

    Example:
        >>> short_repr([1, "a"])
        "[1, 'a']"
        >>> short_repr("x" * 500, limit=10)
        "'xxxxxxxxx... (500 characters; cut at 10)"
    """
    out = []
    room = [limit + 1]

    def emit(text):
        out.append(text[: room[0]])
        room[0] -= len(text)
        if room[0] <= 0:
            raise _Full

    def walk(v, depth):
        kind = type(v)
        if kind in (list, tuple, dict, set) and depth >= _MAX_REPR_DEPTH:
            emit("...")
        elif kind is list or kind is tuple or kind is set:
            if kind is set and not v:
                emit("set()")
                return
            opening, closing = {list: "[]", tuple: "()", set: "{}"}[kind]
            emit(opening)
            for i, item in enumerate(v):
                if i:
                    emit(", ")
                walk(item, depth + 1)
            if kind is tuple and len(v) == 1:
                emit(",")
            emit(closing)
        elif kind is dict:
            emit("{")
            for i, (key, item) in enumerate(v.items()):
                if i:
                    emit(", ")
                walk(key, depth + 1)
                emit(": ")
                walk(item, depth + 1)
            emit("}")
        elif kind is str:
            emit(repr(v[: limit + 1]))
        else:
            emit(repr(v))

    try:
        walk(value, 0)
    except _Full:
        size = f"{len(value)} characters; " if isinstance(value, str) else ""
        return "".join(out)[:limit] + f"... ({size}cut at {limit})"
    return "".join(out)


def unknown_key_error(key: str, allowed, path: str = "") -> ConfigError:
    """A ConfigError for an unknown option, suggesting the closest allowed name."""
    allowed = sorted(allowed)
    hint = difflib.get_close_matches(key, allowed, n=1)
    extra = f" Did you mean '{hint[0]}'?" if hint else ""
    return ConfigError(
        key,
        f"is not a known option.{extra} Allowed: {', '.join(allowed)}",
        path=path,
    )


class NotFittedError(KtpError, RuntimeError):
    """A stage or pipeline was used before it was fitted or loaded."""


class DataError(KtpError, ValueError):
    """Input data is malformed; the message names the file and line where it can.

    Args:
        message: what is wrong (with the file and line in it, as readers write it).
        path: the file, when known.
        lineno: the 1-based line, when known.
    """

    def __init__(self, message: str = "", path: str | None = None, lineno: int | None = None):
        super().__init__(message)
        self.path = path
        self.lineno = lineno

    @classmethod
    def at(cls, path: str, lineno: int, message: str) -> "DataError":
        """The error of line ``lineno`` of ``path``: the message reads ``PATH:LINE: message``.

        Example:
            >>> str(DataError.at("train.tsv", 3, "expected 2 TSV columns, found 1"))
            'train.tsv:3: expected 2 TSV columns, found 1'
        """
        return cls(f"{path}:{lineno}: {message}", path=path, lineno=lineno)


class ExportError(KtpError, RuntimeError):
    """The pipeline cannot be exported, or the exported SavedModel disagrees with it."""


class UnsupportedInGraph(ExportError, ValueError):
    """A tokenizer option or state (jieba, nltk, a regular expression) that the in-graph
    tokenizer of an export cannot reproduce exactly; the message names it and what to do
    instead. A ``ValueError`` too, as it was before it joined ``ExportError``."""


class BatchError(KtpError):
    """The batch job cannot start or go on (bad arguments, an output that exists, a manifest
    that does not match); the message says what to do."""
