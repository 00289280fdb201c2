"""Plain-text assets of the tagger, read back exactly as ``stages.base.write_asset_lines`` wrote them."""

from __future__ import annotations

import os


def read_lines(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: a feature vocabulary of the saved tagger")
    with open(path, encoding="utf-8", newline="\n") as f:
        items = f.read().split("\n")
    if items and items[-1] == "":
        items.pop()
    return items
