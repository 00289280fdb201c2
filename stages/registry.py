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


def registers_task(table: dict, name: str):
    """Class decorator: sets ``cls.task = name`` and files ``cls`` under ``name`` in ``table``
    (the task families' table and the exporters' table register this way)."""

    def wrap(cls):
        cls.task = name
        table[name] = cls
        return cls

    return wrap


def get(kind: str, name: str, path: str = "") -> type:
    """Return the class registered under ``kind``/``name`` or raise a ConfigError that suggests
    the closest registered name.

    Example:
        >>> get("tokenizer", "jeiba", "stages.tokenizer")
        Traceback (most recent call last):
        ...
        stages.errors.ConfigError: stages.tokenizer.type must name a registered tokenizer. Did you mean 'jieba'? One of: char, jieba, nltk, whitespace. Received: type='jeiba'
    """
    _load_builtin_stages()
    if kind not in _REGISTRY:
        raise ValueError(f"Unknown stage kind {kind!r}; expected one of {KINDS}")
    known = _REGISTRY[kind]
    if not isinstance(name, str) or name not in known:
        raise ConfigError("type", registered_requirement(f"a registered {kind}", name, known), name, path)
    return known[name]


def did_you_mean(name, candidates) -> str:
    """`` Did you mean 'x'?`` for the registered name closest to ``name`` (a typo such as
    ``jeiba``, or another case such as ``GRU``), or ``""`` when none is close.

    Example:
        >>> did_you_mean("jeiba", ["jieba", "char"])
        " Did you mean 'jieba'?"
    """
    import difflib

    if not isinstance(name, str):
        return ""
    candidates = sorted(candidates)
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return f" Did you mean '{lowered[name.lower()]}'?"
    hint = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" Did you mean '{lowered[hint[0]]}'?" if hint else ""


def registered_requirement(what: str, name, known) -> str:
    """The requirement of a ConfigError for an unknown registered name, with the closest one:
    ``must name a registered tokenizer. Did you mean 'jieba'? One of: char, jieba, ...``
    (``must name ...: one of ...`` when none is close)."""
    listed = ", ".join(sorted(known))
    hint = did_you_mean(name, known)
    return f"must name {what}.{hint} One of: {listed}" if hint else f"must name {what}: one of {listed}"


def find_kind(name: str) -> str | None:
    """The kind a stage type is registered under (the first, in ``KINDS`` order), or None."""
    _load_builtin_stages()
    if not isinstance(name, str):
        return None
    return next((kind for kind in KINDS if name in _REGISTRY[kind]), None)


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
