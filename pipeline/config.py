"""Pipeline config schema: the ``task``, ``stages``, ``data`` and ``training`` sections.

Stage options are validated by the stage classes themselves (their constructors); this module
validates the sections around them and gives every error one shape, naming the config path:
``training.epochs must be an integer >= 1. Received: epochs=0``.
"""

from __future__ import annotations

import copy

import yaml

from stages.base import check_bool, check_choice, check_int, check_str

from .errors import ConfigError, unknown_key_error

TOP_LEVEL = ("name", "task", "stages", "data", "training")


def column_option(name, value):
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, int) and value < 0):
        raise ConfigError(name, "must be a column name or a 0-based column number", value)


def _path_or_none(name, value):
    check_str(name, value, allow_none=True)


def _verbose(name, value):
    if value not in ("auto", 0, 1, 2):
        raise ConfigError(name, "must be auto, 0 (silent), 1 (progress bar) or 2 (one line per epoch)", value)


#: section -> option -> (default, validator(name, value))
SECTIONS = {
    # Options every task family reads; each family adds its own format options
    # (``Pipeline.data_options``), e.g. which columns hold the text and the label.
    "data": {
        "encoding": ("utf-8", check_str),
        "on_error": ("raise", lambda n, v: check_choice(n, v, ("raise", "skip"))),
        "train": (None, _path_or_none),
        "dev": (None, _path_or_none),
        "test": (None, _path_or_none),
    },
    "training": {
        "epochs": (10, lambda n, v: check_int(n, v, minimum=1)),
        "batch_size": (32, lambda n, v: check_int(n, v, minimum=1)),
        "seed": (42, lambda n, v: check_int(n, v, minimum=0, allow_none=True)),
        "early_stopping_patience": (None, lambda n, v: check_int(n, v, minimum=1, allow_none=True)),
        "monitor": ("val_accuracy", lambda n, v: check_choice(n, v, ("val_accuracy", "val_loss"))),
        "restore_best": (True, check_bool),
        "checkpoint": (True, check_bool),
        "tensorboard": (False, check_bool),
        "csv_log": (True, check_bool),
        "plots": (True, check_bool),
        "verbose": ("auto", _verbose),
        "predict_batch_size": (256, lambda n, v: check_int(n, v, minimum=1)),
    },
}


#: The classification family's ``data`` options.
CLASSIFICATION_DATA = {
    "format": ("tsv", lambda n, v: check_choice(n, v, ("tsv", "csv", "jsonl", "fasttext", "text"))),
    "text_column": ("text", column_option),
    "label_column": ("label", column_option),
    "header": (True, check_bool),
    "label_prefix": ("", lambda n, v: check_str(n, v, allow_empty=True)),
    "label_separator": (None, lambda n, v: check_str(n, v, allow_none=True)),
}


def validate_section(section: str, values, extra: dict | None = None) -> dict:
    """Validate one section against ``SECTIONS[section]`` plus ``extra`` options, filling in
    defaults. Returns a new dict."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(section, "must be a mapping of option names to values", values)
    spec = {**SECTIONS[section], **(extra or {})}
    out = {k: copy.deepcopy(d) for k, (d, _) in spec.items()}
    for key, value in values.items():
        if key not in spec:
            raise unknown_key_error(str(key), spec, path=section)
        try:
            spec[key][1](key, value)
        except ConfigError as err:
            raise err.under(section) from None
        out[key] = value
    return out


def apply_overrides(config: dict, overrides) -> dict:
    """Set ``a.b.c=VALUE`` options (VALUE read as YAML) in a parsed config, in place, and
    return it; ``Pipeline.from_config`` then validates the result like any config file.

    Example:
        >>> apply_overrides({"stages": {"model": {}}}, ["stages.model.units=64", "training.seed=1"])
        {'stages': {'model': {'units': 64}}, 'training': {'seed': 1}}
    """
    for item in overrides:
        path, sep, value = str(item).partition("=")
        keys = [k.strip() for k in path.split(".")]
        if not sep or not all(keys):
            raise ConfigError("", "--set expects PATH=VALUE, e.g. stages.model.units=64", item)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(path, f"has a value that is not valid YAML ({getattr(err, 'problem', err)})", value) from None
        node = config
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(".".join(keys[: i + 1]), "is not a section of the config, so --set cannot go inside it", child)
            node = child
        node[keys[-1]] = parsed
    return config


def load_yaml(path: str) -> dict:
    """Read a YAML config with ``safe_load``; syntax errors become ConfigError naming the line."""
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError("", f"Config file {path} does not exist") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError("", f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise ConfigError("", f"{path} must hold a mapping with a 'stages' section", config)
    return config


def check_top_level(config: dict, tasks) -> None:
    for key in config:
        if key not in TOP_LEVEL:
            raise unknown_key_error(str(key), TOP_LEVEL)
    check_choice("task", config.get("task", "classification"), sorted(tasks))
    if "name" in config:
        check_str("name", config["name"])
    stages = config.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise ConfigError(
            "stages",
            "must be a mapping of stage names to their options, e.g. "
            "{tokenizer: {type: jieba}, vocabulary: {}, vectorizer: {type: embedding}, "
            "model: {type: rnn_classifier}, decoder: {type: label}}",
            stages,
        )
