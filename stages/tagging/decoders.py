"""The tagger's decoders: ``tags`` and ``entities`` (tag ids <-> tags, tags -> entity spans)."""

from __future__ import annotations

import os

import numpy as np

from ..base import Stage, check_bool, check_choice
from ..errors import DataError
from ..registry import register
from ..tag_schemes import OUTSIDE, SCHEMES, convert, scheme_tags, spans_to_tags, tags_to_spans
from ..base import write_asset_lines
from .assets import read_lines


@register("decoder", "tags")
class TagDecoder(Stage):
    """Tag ids <-> tag strings, and tags -> entity spans, for taggers.

    The model is trained in ``scheme``; answers give tags in the data's scheme and entities as
    ``{"type", "start", "end", "text", "token_start", "token_end", "score"}`` with ``start`` /
    ``end`` character offsets into the input text (end exclusive) and ``token_start`` /
    ``token_end`` token indices. Ill-formed predicted sequences are read by the conlleval rules
    (``I-X`` after ``O`` starts an entity; see ``stages.tag_schemes``).

    Args:
        scheme: the tag scheme the model learns: ``bio``, ``iob1``, ``bioes`` or ``bmes``
            (BIOES usually learns a little better than BIO).
        include_tags: put the per-token ``tokens`` and ``tags`` in each answer.

    Example:
        >>> d = TagDecoder(scheme="bio").fit([["B-PER", "O"]])
        >>> d.tags_
        ['O', 'B-PER', 'I-PER']
    """

    fitted_attributes = ("tags_",)

    def __init__(self, scheme: str = "bioes", include_tags: bool = True):
        super().__init__()
        self.tags_ = None

    def _validate(self):
        check_choice("scheme", self.scheme, SCHEMES)
        check_bool("include_tags", self.include_tags)

    def fit(self, data):
        """Learn the entity types from tag sequences (any scheme) or a list of type names."""
        types = set()
        for item in data:
            if isinstance(item, str):
                types.add(item)
            else:
                types.update(s.type for s in tags_to_spans(list(item)))
        if not types:
            raise DataError("The training data has no entities at all; a tagger needs at least one entity type")
        self._set_tags(scheme_tags(sorted(types), self.scheme))
        return self

    def _set_tags(self, tags):
        self.tags_ = list(tags)
        self._index = {t: i for i, t in enumerate(self.tags_)}
        self.types_ = sorted({t[2:] for t in self.tags_ if t != OUTSIDE})

    def encode_spans(self, spans, length: int) -> np.ndarray:
        """Tag ids of ``length`` tokens carrying ``spans`` (token ``Span``s of known types)."""
        self.check_fitted()
        return np.array([self._index[t] for t in spans_to_tags(spans, length, self.scheme)], dtype="int32")

    def tags_of(self, ids) -> list[str]:
        self.check_fitted()
        return [self.tags_[int(i)] for i in ids]

    def transform(self, batch):
        return [self.tags_of(ids) for ids in batch]

    def answer(self, sentence, tag_ids, scores, output_scheme: str) -> dict:
        """The answer for one tokenized sentence.

        Args:
            sentence: a ``TokenizedText`` (tokens with ``text``, ``spans`` and ``raw``).
            tag_ids: one predicted tag id per token.
            scores: one confidence per entity of ``tags_to_spans`` of the predicted tags.
            output_scheme: the scheme of the ``tags`` in the answer.
        """
        tags = self.tags_of(tag_ids)
        entities = []
        for span, score in zip(tags_to_spans(tags), scores):
            start, end = sentence.spans[span.start][0], sentence.spans[span.end - 1][1]
            entities.append(
                {
                    "type": span.type,
                    "start": int(start),
                    "end": int(end),
                    "text": sentence.text[start:end],
                    "token_start": span.start,
                    "token_end": span.end,
                    "score": float(score),
                }
            )
        answer = {"text": sentence.text}
        if self.include_tags:
            answer["tokens"] = list(sentence.raw)
            answer["tags"] = convert(tags, self.scheme, output_scheme) if output_scheme != self.scheme else tags
        answer["entities"] = entities
        return answer

    def save_assets(self, directory):
        self.check_fitted()
        write_asset_lines(os.path.join(directory, "tags.txt"), self.tags_, what="tag")

    def load_assets(self, directory):
        path = os.path.join(directory, "tags.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: the saved pipeline's tag list")
        self._set_tags(read_lines(path))


@register("decoder", "entities")
class EntityDecoder(TagDecoder):
    """The ``tags`` decoder with entity-only answers by default (``include_tags: false``).

    Example:
        >>> EntityDecoder().include_tags
        False
    """

    def __init__(self, scheme: str = "bioes", include_tags: bool = False):
        Stage.__init__(self)  # Stage reads this frame's arguments, so skip TagDecoder.__init__
        self.tags_ = None
