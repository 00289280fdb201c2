"""Plain-text assets of the tagger: one item a line, written and read back exactly."""

from __future__ import annotations

import os

from ..base import write_asset_lines


def write_lines(path, items):
    write_asset_lines(path, items, what="feature")


def read_lines(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: a feature vocabulary of the saved tagger")
    with open(path, encoding="utf-8", newline="\n") as f:
        items = f.read().split("\n")
    if items and items[-1] == "":
        items.pop()
    return items
