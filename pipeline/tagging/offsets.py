"""Tokens with their character offsets in the text they came from (see the ``pipeline.tagging``
docstring: raw strings and token lists both become ``TokenizedText``)."""

from __future__ import annotations


class TokenizedText(list):
    """The tokens of one text as the vocabulary sees them (normalised), plus where they came from.

    Attributes:
        text: the raw text.
        spans: ``(start, end)`` character offsets of each token in ``text``.
        raw: each token as written in ``text`` (before normalisation).
    """

    def __init__(self, tokens, text: str, spans):
        super().__init__(tokens)
        self.text = text
        self.spans = [tuple(s) for s in spans]

    @property
    def raw(self) -> list[str]:
        return [self.text[s:e] for s, e in self.spans]


def tokenize_with_offsets(tokenizer, text: str) -> TokenizedText:
    """Split ``text`` with a tokenizer stage and find each token's character offsets.

    Normalisation (NFKC, lowercasing) is defined character by character, so every normalised
    character maps back to the raw character it came from; the tokenizer splits the
    normalised text and says where each token lies in it (``Tokenizer.split_spans``), which
    maps back to the raw text. Linear in the length of the text.

    Example:
        >>> from stages.tokenizers import CharTokenizer
        >>> t = tokenize_with_offsets(CharTokenizer(), "Ｎ 京")
        >>> list(t), t.spans
        (['N', '京'], [(0, 1), (2, 3)])
    """
    chars, origin = [], []
    for i, ch in enumerate(text):
        normal = tokenizer.normalize(ch)
        chars.append(normal)
        origin.extend([i] * len(normal))
    norm = "".join(chars)
    tokens, spans = [], []
    for tok, j, k in tokenizer.split_spans(norm):
        tokens.append(tok)
        if j >= len(norm):  # nothing left to point at
            spans.append((len(text), len(text)))
        else:
            spans.append((origin[j], origin[max(k - 1, j)] + 1))
    return TokenizedText(tokens, text, spans)


def _join(tokens, unit: str):
    """Join tokens into a text; returns ``(text, spans)``."""
    sep = "" if unit == "char" else " "
    spans, pos = [], 0
    for tok in tokens:
        spans.append((pos, pos + len(tok)))
        pos += len(tok) + len(sep)
    return sep.join(tokens), spans
