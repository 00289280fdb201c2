"""Gold entities against a sentence's tokens: the example record, and gold character spans
projected onto token spans (widened to whole tokens, or left out and counted; see the
``pipeline.tagging`` docstring)."""

from __future__ import annotations

import bisect

from stages.tag_schemes import Span

from .offsets import TokenizedText


class _Example:
    __slots__ = ("gold", "sentence", "tags")

    def __init__(self, sentence, gold, tags=None):
        self.sentence = sentence  # TokenizedText
        self.gold = gold  # [(type, start, end)] at character offsets, or None
        self.tags = tags  # the gold tags as given, when they pair with the sentence's tokens


def project_spans(sentence: TokenizedText, gold, report: dict) -> list[Span]:
    """Gold character spans -> token spans of ``sentence`` (see the ``pipeline.tagging`` docstring)."""
    starts = [s for s, _ in sentence.spans]
    ends = [e for _, e in sentence.spans]
    spans, last_end = [], 0
    for type_, start, end in sorted(gold, key=lambda g: (g[1], g[2])):
        first = bisect.bisect_right(ends, start)  # first token ending after `start`
        stop = bisect.bisect_left(starts, end)  # tokens starting before `end`
        if first >= stop:
            report["entities_without_tokens"] = report.get("entities_without_tokens", 0) + 1
            continue
        if first < last_end:
            report["entities_sharing_a_token"] = report.get("entities_sharing_a_token", 0) + 1
            continue
        if starts[first] != start or ends[stop - 1] != end:
            report["entities_widened"] = report.get("entities_widened", 0) + 1
        spans.append(Span(type_, first, stop))
        last_end = stop
    return spans
