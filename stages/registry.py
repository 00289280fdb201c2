"""Stage registry: maps (kind, name) to stage classes so YAML configs can name them."""

from __future__ import annotations

from .errors import ConfigError

KINDS = ("tokenizer", "vocabulary", "vectorizer", "model", "decoder")
_REGISTRY: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str):
    """Class decorator that registers a stage class under ``kind`` and ``name``.

    Example:
        >>> from stages.registry import register
        >>> from stages.base import Stage
        >>> @register("tokenizer", "my_tokenizer")
        ... class MyTokenizer(Stage):
        ...     pass
    """
    if kind not in _REGISTRY:
        raise ValueError(f"Unknown stage kind {kind!r}; expected one of {KINDS}")

    def wrap(cls):
        existing = _REGISTRY[kind].get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"{kind} {name!r} is already registered to {existing.__name__}")
        cls.kind = kind
        cls.type_name = name
        _REGISTRY[kind][name] = cls
        return cls

    return wrap


def get(kind: str, name: str, path: str = "") -> type:
    """Return the class registered under ``kind``/``name`` or raise a ConfigError."""
    _load_builtin_stages()
    names = _REGISTRY[kind]
    if name not in names:
        raise ConfigError(
            "type",
            f"must name a registered {kind}: one of {', '.join(sorted(names))}",
            name,
            path,
        )
    return names[name]


def names(kind: str | None = None) -> dict[str, list[str]] | list[str]:
    """Registered names, for one kind or all kinds."""
    _load_builtin_stages()
    if kind is not None:
        return sorted(_REGISTRY[kind])
    return {k: sorted(v) for k, v in _REGISTRY.items()}


def all_classes() -> list[type]:
    """Every registered stage class (used by the generic round-trip test)."""
    _load_builtin_stages()
    return [cls for kind in KINDS for cls in _REGISTRY[kind].values()]


def _load_builtin_stages() -> None:
    # Importing the stages package runs the @register decorators.
    import stages  # noqa: F401
