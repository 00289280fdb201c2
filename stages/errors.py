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
            msg += f". Received: {name}={self.received!r}"
        return msg

    def under(self, prefix: str) -> "ConfigError":
        """Return the same error with ``prefix`` put in front of its path."""
        path = ".".join(p for p in (prefix, self.path) if p)
        return ConfigError(self.key, self.requirement, self.received, path)


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


class ExportError(KtpError, RuntimeError):
    """The pipeline cannot be exported, or the exported SavedModel disagrees with it."""


class BatchError(KtpError):
    """The batch job cannot start or go on (bad arguments, an output that exists, a manifest
    that does not match); the message says what to do."""
