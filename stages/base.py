"""The stage contract shared by every stage, and small validators for constructor arguments.

A stage's constructor is its config: it takes explicit keyword arguments, validates them and
stores them unchanged as attributes of the same name. What a stage learns lives in attributes
ending in ``_``. ``get_config()`` returns exactly the constructor arguments, so
``type(s).from_config(s.get_config()).get_config() == s.get_config()``.
"""

from __future__ import annotations

import inspect
import math
import os

from .errors import ConfigError, DataError, NotFittedError, short_repr, unknown_key_error


class Stage:
    """Base class of all stages.

    Subclasses declare their options as keyword arguments of ``__init__``, call
    ``super().__init__()`` with nothing, and validate in ``_validate``. Learned state is kept
    in attributes ending in ``_`` and written by ``save_assets`` as plain files.
    """

    kind = "stage"
    type_name = "stage"
    #: Names of learned attributes that must exist once fitted.
    fitted_attributes: tuple[str, ...] = ()

    def __init__(self):
        # Store exactly the arguments the subclass constructor received.
        frame = inspect.currentframe().f_back
        values = frame.f_locals
        for name in self._param_names():
            setattr(self, name, values[name])
        self._validate()

    # -- config -----------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    @classmethod
    def defaults(cls) -> dict:
        """The default value of every option."""
        sig = inspect.signature(cls.__init__)
        return {n: sig.parameters[n].default for n in cls._param_names()}

    def get_config(self) -> dict:
        """The constructor arguments, exactly as given (plus defaults)."""
        return {name: _plain(getattr(self, name)) for name in self._param_names()}

    @classmethod
    def from_config(cls, config: dict, path: str = ""):
        """Build a stage from ``config``; unknown keys and bad values raise ConfigError."""
        if not isinstance(config, dict):
            raise ConfigError("", "must be a mapping of option names to values", config, path)
        allowed = cls._param_names()
        for key in config:
            if key not in allowed:
                raise unknown_key_error(str(key), allowed, path)
        try:
            return cls(**config)
        except ConfigError as err:
            raise err.under(path) from None

    def _validate(self) -> None:
        """Check the stored options; raise ConfigError naming the bad option."""

    # -- state ------------------------------------------------------------------------------
    def fit(self, data):
        """Learn state from ``data`` and return ``self``. Stages with nothing to learn keep this."""
        return self

    def transform(self, batch):
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return all(getattr(self, a, None) is not None for a in self.fitted_attributes)

    def check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call fit() on the pipeline "
                "(or `ktp train`) first, or load a trained pipeline with Pipeline.load(dir)."
            )

    def save_assets(self, directory: str) -> None:
        """Write learned state to ``directory`` as plain files (nothing by default)."""

    def load_assets(self, directory: str) -> None:
        """Read learned state written by ``save_assets``."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def write_asset_lines(path: str, items, what: str = "item") -> None:
    """Write a plain-text asset one item a line (``\\n`` line ends on every platform); an item
    that holds a newline could not be read back, so it is a ValueError naming it (``what``),
    raised before the file is opened."""
    items = list(items)
    for item in items:
        if "\n" in item:
            raise ValueError(f"cannot save the {what} {item!r} in {os.path.basename(path)}: it holds a newline")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(item + "\n" for item in items)


def read_asset_lines(path: str, what: str) -> list[str]:
    """The lines of a plain-text asset written one item a line (``vocab.txt``, ``labels.txt``).

    Args:
        path: the file.
        what: what it holds, for the message when it is missing.

    Raises:
        FileNotFoundError: the file is missing.
        DataError: it is a symbolic link, is not UTF-8, or repeats a line (naming the line).
    """
    if os.path.islink(path):
        raise DataError(f"{path} is a symbolic link; a saved pipeline's assets must be plain files", path=path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: {what}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8; the file is damaged", path=path, lineno=line) from None
    items = text.split("\n")
    if items and items[-1] == "":
        items.pop()
    first = {}
    for i, item in enumerate(items, start=1):
        if item in first:
            raise DataError(
                f"{path}:{i}: repeats {short_repr(item, 80)} (first on line {first[item]}); each line must be "
                "different (the file is damaged or was edited)",
                path=path,
                lineno=i,
            )
        first[item] = i
    return items


def _plain(value):
    """Tuples become lists so configs compare equal after a YAML round trip."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# -- size limits ------------------------------------------------------------------------------
# Upper bounds of the size options, checked at construction (so ``ktp validate`` refuses a
# config whose model could never fit in memory, and the error names the limit). Each is far
# above any model this project trains; raising one is a one-line change.
#: Recurrent units per layer (and direction): an LSTM this wide has over a billion weights.
MAX_UNITS = 16_384
#: Stacked recurrent layers.
MAX_LAYERS = 64
#: Units of one dense layer.
MAX_DENSE_UNITS = 65_536
#: Embedding vector size.
MAX_DIM = 16_384
#: Vocabulary entries (``max_size``).
MAX_VOCABULARY = 10_000_000
#: Tokens kept per text (``max_length``).
MAX_LENGTH = 1_000_000
#: Networks in one ensemble.
MAX_ENSEMBLE = 64
#: Texts per training or prediction batch.
MAX_BATCH = 1 << 20


# -- validators -------------------------------------------------------------------------------
def check_int(name, value, minimum=None, maximum=None, allow_none=False):
    if value is None and allow_none:
        return
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(name, _bounds_phrase("must be an integer", minimum, maximum, allow_none), value)


def _bounds_phrase(kind, minimum, maximum, allow_none, open_min=False):
    """``must be a number > 0 and <= 1 or null``: what ``check_int`` / ``check_float`` want."""
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if open_min else '>='} {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    return kind + (" " + " and ".join(bounds) if bounds else "") + (" or null" if allow_none else "")


def check_float(name, value, minimum=None, maximum=None, allow_none=False, open_min=False):
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if open_min else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        raise ConfigError(name, _bounds_phrase("must be a number", minimum, maximum, allow_none, open_min), value)


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ConfigError(name, "must be true or false", value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(map(str, choices))}", value)


def check_str(name, value, allow_none=False, allow_empty=False):
    if value is None and allow_none:
        return
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ConfigError(name, "must be a non-empty string" + (" or null" if allow_none else ""), value)


def check_str_list(name, value):
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(name, "must be a list of non-empty strings", value)
