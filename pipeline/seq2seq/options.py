"""The translation and language-model families' ``data`` options and their reserved tokens."""

from __future__ import annotations

import re

from stages.base import check_choice, check_str

from ..config import column_option
from ..errors import ConfigError

BOS, EOS = "<bos>", "<eos>"


def _lang_option(name, value):
    check_str(name, value, allow_none=True)
    if value is not None and not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*", value):
        raise ConfigError(name, "must be a language code such as en, de or zh", value)


#: The translation family's ``data`` options.
TRANSLATION_DATA = {
    "format": ("aligned", lambda n, v: check_choice(n, v, ("aligned", "tsv", "csv"))),
    "source_lang": (None, _lang_option),
    "target_lang": (None, _lang_option),
    "source_column": ("source", column_option),
    "target_column": ("target", column_option),
    "header": (True, lambda n, v: check_choice(n, v, (True, False))),
    "on_empty": ("error", lambda n, v: check_choice(n, v, ("error", "skip"))),
}

#: The language-model family's ``data`` options.
LANGUAGE_MODEL_DATA = {
    "format": ("text", lambda n, v: check_choice(n, v, ("text", "tsv", "csv", "jsonl"))),
    "text_column": ("text", column_option),
    "header": (True, lambda n, v: check_choice(n, v, (True, False))),
    "language": (None, _lang_option),
}


def _check_reserved(pipeline, name, vocabulary):
    missing = [t for t in (BOS, EOS) if t not in vocabulary.reserved]
    if missing:
        raise ConfigError(
            "reserved",
            f"must include {' and '.join(missing)} for a {pipeline.task} pipeline, e.g. reserved: [<bos>, <eos>]",
            list(vocabulary.reserved),
            f"stages.{name}",
        )
