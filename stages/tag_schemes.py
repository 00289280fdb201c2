"""Tag schemes for sequence tagging: BIO (IOB2), IOB1, BIOES and BMES.

A tag is ``O`` (outside any entity) or ``<prefix>-<TYPE>``, e.g. ``B-PER``. The schemes differ in
the prefixes they use:

========  ======================================================================================
``bio``   IOB2: ``B-`` begins every entity, ``I-`` continues it.
``iob1``  ``I-`` for every entity token; ``B-`` only on the first token of an entity that
          directly follows another entity of the same type (CoNLL-2003's original files).
``bioes`` ``B-`` begin, ``I-`` inside, ``E-`` end, ``S-`` single-token entity.
``bmes``  BIOES with ``M-`` (middle) for ``I-``, as Chinese corpora (Resume NER) write it.
========  ======================================================================================

Decoding tags into entities (``tags_to_spans``) follows the conlleval rules, the same as
``seqeval``'s default mode, so ill-formed sequences get a defined reading:

- an entity starts at ``B-``/``S-``; at ``I-``/``E-`` (``M-``) after ``O``, after an ``E-``/``S-``
  or at the start of the sentence; and at any tag whose type differs from the previous tag's;
- an entity ends after ``E-``/``S-``; before ``B-``/``S-``/``O``; and before a change of type.

So ``O I-PER I-PER`` is one PER entity, ``B-PER I-LOC`` is a PER and a LOC entity, and
``B-PER E-PER E-PER`` is two entities. Converting between schemes decodes with these rules and
re-encodes, so the output of ``convert`` is always well formed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import DataError

SCHEMES = ("bio", "iob1", "bioes", "bmes")
PREFIXES = {
    "bio": ("B", "I"),
    "iob1": ("B", "I"),
    "bioes": ("B", "I", "E", "S"),
    "bmes": ("B", "M", "E", "S"),
}
OUTSIDE = "O"


class Span(NamedTuple):
    """An entity over tokens ``start`` .. ``end - 1``."""

    type: str
    start: int
    end: int


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return scheme


def parse_tag(tag: str, scheme: str | None = None) -> tuple[str, str | None]:
    """Split a tag into ``(prefix, type)``; ``O`` gives ``("O", None)``.

    Raises:
        DataError: the tag is not ``O`` or ``<prefix>-<TYPE>`` with a prefix of ``scheme``
            (any of B, I, M, E, S when ``scheme`` is None).

    Example:
        >>> parse_tag("B-PER")
        ('B', 'PER')
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    allowed = PREFIXES[scheme] if scheme else ("B", "I", "M", "E", "S")
    if not isinstance(tag, str) or len(tag) < 3 or tag[1] != "-" or tag[0] not in allowed:
        what = f"the {scheme} scheme" if scheme else "any scheme"
        raise DataError(
            f"{tag!r} is not a valid tag for {what}: expected O or one of "
            f"{', '.join(p + '-TYPE' for p in allowed)} (set data.scheme to the scheme of the file)"
        )
    return tag[0], tag[2:]


def tags_to_spans(tags, scheme: str | None = None) -> list[Span]:
    """Entities in a tag sequence, by the conlleval rules (see the module docstring).

    Args:
        tags: tag strings.
        scheme: when given, tags with a prefix outside this scheme raise DataError.

    Example:
        >>> tags_to_spans(["B-PER", "I-PER", "O", "I-LOC"])
        [Span(type='PER', start=0, end=2), Span(type='LOC', start=3, end=4)]
    """
    spans = []
    start = None
    prev_prefix, prev_type = OUTSIDE, None
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, type_ = parse_tag(tag, scheme) if i < len(tags) else (OUTSIDE, None)
        if prefix == "M":
            prefix = "I"
        if start is not None and _ends(prev_prefix, prev_type, prefix, type_):
            spans.append(Span(prev_type, start, i))
            start = None
        if _starts(prev_prefix, prev_type, prefix, type_):
            start = i
        prev_prefix, prev_type = prefix, type_
    return spans


def _ends(prev_prefix, prev_type, prefix, type_) -> bool:
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", OUTSIDE):
        return True
    return prev_prefix != OUTSIDE and prev_type != type_


def _starts(prev_prefix, prev_type, prefix, type_) -> bool:
    if prefix in ("B", "S"):
        return True
    if prefix in ("I", "E") and prev_prefix in ("E", "S", OUTSIDE):
        return True
    return prefix != OUTSIDE and prev_type != type_


def spans_to_tags(spans, length: int, scheme: str) -> list[str]:
    """Tags of ``length`` tokens in ``scheme`` for non-overlapping ``spans``.

    Raises:
        ValueError: spans overlap or fall outside ``0 .. length``.

    Example:
        >>> spans_to_tags([Span("PER", 0, 2), Span("LOC", 3, 4)], 4, "bioes")
        ['B-PER', 'E-PER', 'O', 'S-LOC']
    """
    check_scheme(scheme)
    tags = [OUTSIDE] * length
    previous = None
    for span in sorted((Span(*s) for s in spans), key=lambda s: (s.start, s.end)):
        if not 0 <= span.start < span.end <= length:
            raise ValueError(f"Entity {tuple(span)} is outside the {length} tokens of the sentence")
        if previous is not None and span.start < previous.end:
            raise ValueError(f"Entities {tuple(previous)} and {tuple(span)} overlap")
        n = span.end - span.start
        if scheme == "bio":
            tags[span.start : span.end] = [f"B-{span.type}"] + [f"I-{span.type}"] * (n - 1)
        elif scheme == "iob1":
            adjacent = previous is not None and previous.end == span.start and previous.type == span.type
            first = "B" if adjacent else "I"
            tags[span.start : span.end] = [f"{first}-{span.type}"] + [f"I-{span.type}"] * (n - 1)
        else:
            inside = "M" if scheme == "bmes" else "I"
            if n == 1:
                tags[span.start] = f"S-{span.type}"
            else:
                tags[span.start : span.end] = [f"B-{span.type}"] + [f"{inside}-{span.type}"] * (n - 2) + [f"E-{span.type}"]
        previous = span
    return tags


def convert(tags, source: str, target: str) -> list[str]:
    """Re-tag a sequence from one scheme into another (decode, then encode).

    Example:
        >>> convert(["B-LOC", "I-LOC", "I-LOC"], "bio", "bmes")
        ['B-LOC', 'M-LOC', 'E-LOC']
    """
    check_scheme(source)
    check_scheme(target)
    tags = list(tags)
    return spans_to_tags(tags_to_spans(tags, source), len(tags), target)


def is_well_formed(tags, scheme: str) -> bool:
    """True when ``tags`` is exactly what ``scheme`` would write for its own entities."""
    tags = list(tags)
    try:
        return convert(tags, scheme, scheme) == tags
    except DataError:
        return False


def entity_types(tag_sequences) -> list[str]:
    """The sorted entity types used in some tag sequences."""
    types = set()
    for tags in tag_sequences:
        for tag in tags:
            prefix, type_ = parse_tag(tag)
            if type_ is not None:
                types.add(type_)
    return sorted(types)


def scheme_tags(types, scheme: str) -> list[str]:
    """Every tag of ``scheme`` over ``types``: ``O`` first, then by type and prefix."""
    check_scheme(scheme)
    return [OUTSIDE] + [f"{p}-{t}" for t in sorted(types) for p in PREFIXES[scheme]]


def allowed_transitions(tags, scheme: str):
    """Which moves between ``tags`` a well-formed sequence of ``scheme`` can make.

    Returns:
        ``(transitions, start, end)`` as 0/1 numpy arrays of shapes ``(K, K)``, ``(K,)`` and
        ``(K,)``: ``transitions[i, j]`` is 1 when tag ``j`` may follow tag ``i``, ``start[j]``
        when a sentence may start with tag ``j``, ``end[i]`` when it may end with tag ``i``.
        IOB1 forbids ``O -> B-X`` and ``B-X`` after anything but ``I-X``/``B-X``; the others
        forbid continuing (``I``/``M``/``E``) an entity that is not open.

    Example:
        >>> trans, start, end = allowed_transitions(["O", "B-PER", "I-PER"], "bio")
        >>> int(trans[0, 2]), int(start[2])
        (0, 0)
    """
    check_scheme(scheme)
    parsed = [parse_tag(t, scheme) for t in tags]
    k = len(tags)
    trans = np.zeros((k, k), dtype="int32")
    start = np.zeros(k, dtype="int32")
    end = np.zeros(k, dtype="int32")
    for j, (p, t) in enumerate(parsed):
        start[j] = _may_follow(scheme, (OUTSIDE, None), (p, t))
        end[j] = _may_follow(scheme, (p, t), (OUTSIDE, None))
        for i, prev in enumerate(parsed):
            trans[i, j] = _may_follow(scheme, prev, (p, t))
    return trans, start, end


def _may_follow(scheme, prev, cur) -> bool:
    (pp, pt), (cp, ct) = prev, cur
    if scheme in ("bio", "iob1"):
        if cp == "I":
            # bio: I-X continues B-X or I-X; iob1: I-X may also begin an entity.
            return scheme == "iob1" or (pp in ("B", "I") and pt == ct)
        if cp == "B" and scheme == "iob1":
            return pp in ("B", "I") and pt == ct
        return True
    inside = "M" if scheme == "bmes" else "I"
    open_entity = pp in ("B", inside)
    if cp in (inside, "E"):
        return open_entity and pt == ct
    return not open_entity  # O, B-, S- only once the previous entity is closed
