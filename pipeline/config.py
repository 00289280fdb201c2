"""Pipeline config schema: the ``task``, ``stages``, ``data`` and ``training`` sections.

Stage options are validated by the stage classes themselves (their constructors); this module
validates the sections around them and gives every error one shape, naming the config path:
``training.epochs must be an integer >= 1. Received: epochs=0``.
"""

from __future__ import annotations

import codecs
import copy
import os
import stat

import yaml

from stages.base import MAX_BATCH, check_bool, check_choice, check_int, check_str
from stages.errors import short_repr

from .errors import ConfigError, unknown_key_error

TOP_LEVEL = ("name", "task", "stages", "data", "training")


def column_option(name, value):
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, int) and value < 0):
        raise ConfigError(name, "must be a column name or a 0-based column number", value)


def _path_or_none(name, value):
    check_str(name, value, allow_none=True)


def encoding_option(name, value):
    check_str(name, value)
    try:
        codecs.lookup(value)
    except LookupError:
        raise ConfigError(name, "must name a text encoding Python knows, e.g. utf-8, gbk or utf-16", value) from None


def _verbose(name, value):
    if value not in ("auto", 0, 1, 2):
        raise ConfigError(name, "must be auto, 0 (silent), 1 (progress bar) or 2 (one line per epoch)", value)


#: section -> option -> (default, validator(name, value))
SECTIONS = {
    # Options every task family reads; each family adds its own format options
    # (``Pipeline.data_options``), e.g. which columns hold the text and the label.
    "data": {
        "encoding": ("utf-8", encoding_option),
        "on_error": ("raise", lambda n, v: check_choice(n, v, ("raise", "skip"))),
        "train": (None, _path_or_none),
        "dev": (None, _path_or_none),
        "test": (None, _path_or_none),
    },
    "training": {
        "epochs": (10, lambda n, v: check_int(n, v, minimum=1)),
        "batch_size": (32, lambda n, v: check_int(n, v, minimum=1, maximum=MAX_BATCH)),
        "seed": (42, lambda n, v: check_int(n, v, minimum=0, allow_none=True)),
        "early_stopping_patience": (None, lambda n, v: check_int(n, v, minimum=1, allow_none=True)),
        "monitor": ("val_accuracy", lambda n, v: check_choice(n, v, ("val_accuracy", "val_loss"))),
        "restore_best": (True, check_bool),
        "checkpoint": (True, check_bool),
        "tensorboard": (False, check_bool),
        "csv_log": (True, check_bool),
        "plots": (True, check_bool),
        "verbose": ("auto", _verbose),
        "predict_batch_size": (256, lambda n, v: check_int(n, v, minimum=1, maximum=MAX_BATCH)),
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


#: The classification family's ``training`` options, beyond the common ones.
CLASSIFICATION_TRAINING = {
    # Off by default: every config trains on the batches it always had, so its measured
    # figures stand (docs/results_classification.md has what switching it on changes).
    "length_buckets": (False, check_bool),
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
            parsed = parse_yaml(value, "it")
        except ConfigError as err:
            raise ConfigError(path, f"has a value that cannot be used: {err}", value) from None
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


#: Limits of a config file: its size, how deep it nests and how many values it holds once
#: YAML aliases are expanded (a few lines of aliases can stand for billions of values).
MAX_CONFIG_BYTES = 16 << 20
MAX_CONFIG_DEPTH = 64
MAX_CONFIG_VALUES = 1_000_000


class _DuplicateKey(Exception):
    def __init__(self, key, first, second):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no tags that build Python objects) that also refuses a key given
    twice in one mapping, which plain YAML loading resolves silently by keeping the last."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *base`` keys may be overridden: that is what merging is for
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, seen[key], line)
                    seen[key] = line
                except TypeError:
                    continue  # an unhashable key: the base class reports it
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str = "the config"):
    """Parse YAML text as a config is parsed (``ConfigLoader``, then ``check_size``).

    Raises:
        ConfigError: bad syntax (naming the line), a duplicate key, nesting deeper than
            ``MAX_CONFIG_DEPTH`` or more than ``MAX_CONFIG_VALUES`` values.
    """
    try:
        value = yaml.load(text, Loader=ConfigLoader)  # noqa: S506  (ConfigLoader is a SafeLoader)
    except _DuplicateKey as dup:
        raise ConfigError(
            "", f"{source} has the key {short_repr(dup.key)} twice in one mapping (lines {dup.first} and {dup.second}); keep one"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError("", f"{source} is not valid YAML{where}: {' '.join(str(problem).split())[:300]}") from None
    except RecursionError:
        raise ConfigError("", f"{source} nests too deeply to be read (a config may nest at most {MAX_CONFIG_DEPTH} levels)") from None
    check_size(value, source)
    return value


def check_size(value, source: str = "the config") -> None:
    """Refuse a parsed config that nests deeper than ``MAX_CONFIG_DEPTH`` levels, holds more
    than ``MAX_CONFIG_VALUES`` values counted with every alias expanded, or refers to itself.
    Shared values are measured once, so the check is quick even for an alias bomb."""
    sizes = {}  # id -> (values, depth) of containers already measured
    active = set()
    stack = [(value, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (list, dict)):
            continue
        key = id(node)
        children = list(node.values()) + list(node.keys()) if isinstance(node, dict) else node
        if done:
            active.discard(key)
            count, depth = 1, 1
            for child in children:
                if isinstance(child, (list, dict)):
                    c, d = sizes[id(child)]
                    count += c
                    depth = max(depth, d + 1)
                else:
                    count += 1
            if depth > MAX_CONFIG_DEPTH:
                raise ConfigError("", f"{source} nests {depth} levels deep; a config may nest at most {MAX_CONFIG_DEPTH}")
            if count > MAX_CONFIG_VALUES:
                raise ConfigError(
                    "", f"{source} holds more than {MAX_CONFIG_VALUES:,} values once its YAML aliases are expanded; "
                    "a config this large is refused"
                )
            sizes[key] = (count, depth)
            continue
        if key in sizes:
            continue
        if key in active:
            raise ConfigError("", f"{source} refers to itself (a YAML alias inside its own anchor)")
        active.add(key)
        stack.append((node, True))
        if len(active) > MAX_CONFIG_DEPTH:
            raise ConfigError("", f"{source} nests more than {MAX_CONFIG_DEPTH} levels deep; a config may nest at most {MAX_CONFIG_DEPTH}")
        stack.extend((child, False) for child in children if isinstance(child, (list, dict)) and id(child) not in sizes)


def _decode_config(path: str, data: bytes) -> str:
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise ConfigError("", f"{path} is {name} text; save the config as UTF-8")
    if b"\x00" in data:
        raise ConfigError("", f"{path} holds NUL bytes (is it UTF-16 text, or not text at all?); save the config as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            "", f"{path} is not UTF-8 text (byte {data[err.start]:#04x} on line {line}); save the config as UTF-8"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def load_yaml(path: str) -> dict:
    """Read a YAML config safely (``ConfigLoader``: no Python objects, no duplicate keys).

    Every way the file can be wrong is a one-line ConfigError: missing, a folder, unreadable,
    larger than ``MAX_CONFIG_BYTES``, not UTF-8 (UTF-16 included), bad YAML (naming the line),
    a duplicate key, nesting deeper than ``MAX_CONFIG_DEPTH``, an alias bomb, or not a mapping.
    """
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError("", f"{path} is a folder, not a YAML config file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError("", f"{path} is not a regular file; give a YAML config file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError("", f"{path} is {st.st_size:,} bytes; a config file may be at most {MAX_CONFIG_BYTES:,} bytes")
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("", f"Config file {path} does not exist") from None
    except OSError as err:
        raise ConfigError("", f"Config file {path} cannot be read: {err.strerror or err}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"{path} is larger than {MAX_CONFIG_BYTES:,} bytes, the most a config file may be")
    config = parse_yaml(_decode_config(path, data), path)
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
