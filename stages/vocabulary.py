"""The vocabulary stage: token <-> id mapping with reserved ``<pad>`` = 0 and ``<unk>`` = 1."""

from __future__ import annotations

import os
from collections import Counter

from .errors import ConfigError, DataError
from .registry import register

from .base import MAX_VOCABULARY, Stage, check_int, check_str_list, read_asset_lines, write_asset_lines

PAD = "<pad>"
UNK = "<unk>"


@register("vocabulary", "vocabulary")
class Vocabulary(Stage):
    """Top-N tokens by frequency, in a deterministic order.

    Ids: ``<pad>`` = 0, ``<unk>`` = 1, then ``reserved`` tokens (e.g. ``<bos>``, ``<eos>``),
    then corpus tokens by descending count, ties broken by the token's code points, so the same
    counts give the same ids on every machine.

    Args:
        max_size: the largest vocabulary, special and reserved tokens included (``null``: no
            limit). It is the model's input dimension for one-hot vectors.
        min_freq: drop tokens seen fewer times than this in the training data.
        reserved: extra special tokens that always get ids right after ``<unk>``.

    Example:
        >>> v = Vocabulary(max_size=10).fit([["a", "b", "a"]])
        >>> v.tokens_
        ['<pad>', '<unk>', 'a', 'b']
        >>> v.transform([["a", "zzz"]])
        [[2, 1]]
    """

    fitted_attributes = ("tokens_",)

    def __init__(self, max_size: int | None = 30000, min_freq: int = 1, reserved: list[str] = ()):
        super().__init__()
        self.tokens_ = None
        self.counts_ = None
        self.index_ = None

    def _validate(self):
        check_str_list("reserved", self.reserved)
        specials = 2 + len(self.reserved)
        check_int("max_size", self.max_size, minimum=specials + 1, maximum=MAX_VOCABULARY, allow_none=True)
        check_int("min_freq", self.min_freq, minimum=1)
        clash = {PAD, UNK} & set(self.reserved)
        if clash or len(set(self.reserved)) != len(self.reserved):
            raise ConfigError("reserved", "must not repeat a token or name <pad> / <unk>", self.reserved)
        if any("\n" in t or "\r" in t for t in self.reserved):
            raise ConfigError("reserved", "must be tokens without line breaks (vocab.txt holds one token a line)", self.reserved)

    @property
    def specials(self) -> list[str]:
        return [PAD, UNK, *self.reserved]

    def fit(self, data):
        """Count tokens in ``data`` (an iterable of token lists) and keep the top ones."""
        counts = Counter()
        for tokens in data:
            counts.update(tokens)
        specials = self.specials
        for s in specials:
            counts.pop(s, None)
        kept = [t for t, c in counts.items() if c >= self.min_freq]
        kept.sort(key=lambda t: (-counts[t], t))
        if self.max_size is not None:
            kept = kept[: self.max_size - len(specials)]
        self._set_tokens(specials + kept)
        self.counts_ = {t: counts[t] for t in kept}
        return self

    def _set_tokens(self, tokens):
        self.tokens_ = list(tokens)
        self.index_ = {t: i for i, t in enumerate(self.tokens_)}

    def __len__(self):
        self.check_fitted()
        return len(self.tokens_)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def id_of(self, token: str) -> int:
        self.check_fitted()
        return self.index_.get(token, 1)

    def transform(self, batch):
        """Map token lists to id lists; unknown tokens get the ``<unk>`` id 1."""
        self.check_fitted()
        get = self.index_.get
        return [[get(t, 1) for t in tokens] for tokens in batch]

    def inverse_transform(self, batch, skip_special: bool = True):
        """Map id lists back to token lists (dropping ``<pad>`` and reserved tokens by default)."""
        self.check_fitted()
        n_special = len(self.specials)
        out = []
        for ids in batch:
            row = []
            for i in ids:
                i = int(i)
                if skip_special and (i == 0 or 2 <= i < n_special):
                    continue
                row.append(self.tokens_[i] if 0 <= i < len(self.tokens_) else UNK)
            out.append(row)
        return out

    def coverage(self, data, top: int = 20) -> dict:
        """How much of a corpus the vocabulary covers.

        Args:
            data: an iterable of token lists.
            top: how many of the most frequent unknown tokens to list.

        Returns:
            ``{"tokens", "known_tokens", "coverage", "types", "unknown_types",
            "top_unknown": [[token, count], ...]}``.
        """
        self.check_fitted()
        unknown = Counter()
        total = 0
        types = set()
        for tokens in data:
            total += len(tokens)
            types.update(tokens)
            unknown.update(t for t in tokens if t not in self.index_)
        n_unknown = sum(unknown.values())
        return {
            "tokens": total,
            "known_tokens": total - n_unknown,
            "coverage": (total - n_unknown) / total if total else 1.0,
            "types": len(types),
            "unknown_types": len(unknown),
            "top_unknown": [[t, c] for t, c in unknown.most_common(top)],
        }

    def save_assets(self, directory):
        self.check_fitted()
        write_asset_lines(os.path.join(directory, "vocab.txt"), self.tokens_, what="token")

    def load_assets(self, directory):
        """Read ``vocab.txt``: the special tokens first, no token twice, at most ``max_size``.

        Raises:
            FileNotFoundError: the file is missing.
            DataError: it breaks one of those rules or is not UTF-8 (naming the file).
        """
        path = os.path.join(directory, "vocab.txt")
        tokens = read_asset_lines(path, "the saved pipeline's vocabulary")
        if tokens[: len(self.specials)] != self.specials:
            raise DataError(f"{path} does not start with the special tokens {self.specials}", path=path)
        if self.max_size is not None and len(tokens) > self.max_size:
            raise DataError(f"{path} holds {len(tokens)} tokens, more than max_size {self.max_size}", path=path)
        self._set_tokens(tokens)
