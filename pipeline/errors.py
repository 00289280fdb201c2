"""The package's small exception hierarchy, built on builtins so callers can catch either."""

from __future__ import annotations

import difflib


class ConfigError(ValueError):
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


class NotFittedError(RuntimeError):
    """A stage or pipeline was used before it was fitted or loaded."""


class DataError(ValueError):
    """Input data is malformed; the message names the file and line where it can."""
