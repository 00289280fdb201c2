"""Plain-text assets of the tagger: one item a line, written and read back exactly."""

from __future__ import annotations

import os


def write_lines(path, items):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for item in items:
            if "\n" in item:
                raise ValueError(f"cannot save the feature {item!r}: it holds a newline")
            f.write(item + "\n")


def read_lines(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: a feature vocabulary of the saved tagger")
    with open(path, encoding="utf-8", newline="\n") as f:
        items = f.read().split("\n")
    if items and items[-1] == "":
        items.pop()
    return items
