"""The tagger's feature families by name, the ``features`` option's parser, and the
translation of the flat options of earlier versions."""

from __future__ import annotations

from ..errors import ConfigError, unknown_key_error
from .features import Bigrams, Chars, Shape, TokenFeature, WordBoundary
from .lexicon import Lexicon


#: The feature families, in the order their vectors are concatenated.
FEATURES: dict[str, type[TokenFeature]] = {cls.name: cls for cls in (Chars, Shape, Bigrams, WordBoundary, Lexicon)}


def parse_features(config) -> list[TokenFeature]:
    """The ``features`` option of ``rnn_tagger`` -> feature objects in ``FEATURES`` order."""
    if config is None:
        return []
    if not isinstance(config, dict):
        raise ConfigError("features", "must be a mapping of feature families to their options, e.g. {chars: {kind: cnn}}", config)
    for name in config:
        if name not in FEATURES:
            raise unknown_key_error(str(name), FEATURES, "features")
    return [cls(config[name], f"features.{name}") for name, cls in FEATURES.items() if name in config]


#: The flat options of earlier versions: old name -> (family, option; None for the switch).
LEGACY_OPTIONS = {
    "char_features": ("chars", "kind"), "char_dim": ("chars", "dim"), "char_units": ("chars", "units"),
    "char_kernel": ("chars", "kernel"), "char_max_length": ("chars", "max_length"), "char_min_freq": ("chars", "min_freq"),
    "case_features": ("shape", None), "case_dim": ("shape", "dim"),
    "bigram_features": ("bigrams", None), "bigram_dim": ("bigrams", "dim"), "bigram_min_freq": ("bigrams", "min_freq"),
    "bigram_pretrained": ("bigrams", "pretrained"),
    "word_boundary": ("word_boundary", None), "boundary_dim": ("word_boundary", "dim"),
    "lexicon_features": ("lexicon", None), "lexicon_max_length": ("lexicon", "max_length"),
    "lexicon_jieba": ("lexicon", "jieba"), "lexicon_min_freq": ("lexicon", "min_freq"), "lexicon_path": ("lexicon", "path"),
    "lexicon_dim": ("lexicon", "dim"), "lexicon_word_min_freq": ("lexicon", "word_min_freq"),
    "lexicon_pooling": ("lexicon", "pooling"), "lexicon_pos": ("lexicon", "pos"), "lexicon_pretrained": ("lexicon", "pretrained"),
}


def legacy_features(config: dict) -> tuple[dict, list[str], list[str]]:
    """Translate the flat feature options of earlier versions (``char_features: cnn``,
    ``lexicon_dim: 50``, ...) in ``config`` into the ``features`` mapping.

    Returns:
        ``(features, old_keys, ignored)``: the mapping (only the families switched on, with the
        options that differ from their defaults), the flat keys found, and the ``key=value``
        of options set for a family that is switched off (they had no effect, and still have
        none).
    """
    old = [k for k in config if k in LEGACY_OPTIONS]
    on = {
        "chars": config.get("char_features", "none") != "none",
        "shape": bool(config.get("case_features", False)),
        "bigrams": bool(config.get("bigram_features", False)),
        "word_boundary": bool(config.get("word_boundary", False)),
        "lexicon": bool(config.get("lexicon_features", False)),
    }
    features, ignored = {name: {} for name in FEATURES if on[name]}, []
    for key in old:
        family, option = LEGACY_OPTIONS[key]
        if option is None or (family == "chars" and key == "char_features"):
            if family == "chars" and on["chars"]:
                features["chars"]["kind"] = config[key]
            continue
        value = config[key]
        if value == FEATURES[family].OPTIONS[option][0]:
            continue
        if family in features:
            features[family][option] = value
        else:
            ignored.append(f"{key}={value!r}")
    return features, old, ignored
