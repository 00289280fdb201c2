import random

import pytest

from pipeline.errors import DataError
from stages.tag_schemes import (
    Span,
    allowed_transitions,
    convert,
    entity_types,
    is_well_formed,
    parse_tag,
    scheme_tags,
    spans_to_tags,
    tags_to_spans,
)

SPANS = [Span("PER", 0, 2), Span("PER", 2, 3), Span("LOC", 4, 5), Span("ORG", 5, 8)]
ENCODED = {
    "bio": ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "I-ORG"],
    "iob1": ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "I-ORG"],
    "bioes": ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "B-ORG", "I-ORG", "E-ORG"],
    "bmes": ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "B-ORG", "M-ORG", "E-ORG"],
}


@pytest.mark.parametrize("scheme", sorted(ENCODED))
def test_spans_to_tags_writes_each_scheme(scheme):
    assert spans_to_tags(SPANS, 8, scheme) == ENCODED[scheme]


@pytest.mark.parametrize("scheme", sorted(ENCODED))
def test_tags_to_spans_reads_each_scheme(scheme):
    assert tags_to_spans(ENCODED[scheme], scheme) == SPANS


@pytest.mark.parametrize("source", sorted(ENCODED))
@pytest.mark.parametrize("target", sorted(ENCODED))
def test_convert_between_every_pair_of_schemes(source, target):
    assert convert(ENCODED[source], source, target) == ENCODED[target]


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["O", "I-PER", "I-PER"], [("PER", 1, 3)]),  # I- after O starts an entity
        (["I-PER"], [("PER", 0, 1)]),  # ... and so does I- at the start
        (["B-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),  # a type change splits
        (["B-PER", "E-PER", "E-PER"], [("PER", 0, 2), ("PER", 2, 3)]),  # E- after E- starts anew
        (["S-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-LOC", "M-LOC", "O", "M-LOC", "E-LOC"], [("LOC", 0, 2), ("LOC", 3, 5)]),
    ],
)
def test_tags_to_spans_reads_ill_formed_sequences_like_conlleval(tags, spans):
    assert [tuple(s) for s in tags_to_spans(tags)] == spans


def test_tags_to_spans_agrees_with_seqeval_on_random_sequences():
    seqeval = pytest.importorskip("seqeval.metrics.sequence_labeling")
    rng = random.Random(0)
    pool = ["O", "O", "O"] + [f"{p}-{t}" for p in "BIES" for t in ("PER", "LOC")]
    for _ in range(500):
        tags = [rng.choice(pool) for _ in range(rng.randint(1, 9))]
        expected = [(t, s, e + 1) for t, s, e in seqeval.get_entities(tags)]
        assert [tuple(s) for s in tags_to_spans(tags)] == expected, tags


def test_convert_makes_ill_formed_sequences_well_formed():
    out = convert(["O", "I-PER", "E-PER", "I-LOC"], "bioes", "bioes")
    assert out == ["O", "B-PER", "E-PER", "S-LOC"]
    assert is_well_formed(out, "bioes")
    assert not is_well_formed(["O", "I-PER"], "bio")


def test_parse_tag_rejects_a_prefix_outside_the_scheme():
    with pytest.raises(DataError, match="'E-PER' is not a valid tag for the bio scheme"):
        parse_tag("E-PER", "bio")


@pytest.mark.parametrize("tag", ["PER", "B_PER", "X-PER", "B-", ""])
def test_parse_tag_rejects_malformed_tags(tag):
    with pytest.raises(DataError, match="is not a valid tag"):
        parse_tag(tag)


def test_spans_to_tags_rejects_overlapping_entities():
    with pytest.raises(ValueError, match="overlap"):
        spans_to_tags([Span("PER", 0, 2), Span("LOC", 1, 3)], 4, "bio")


def test_spans_to_tags_rejects_entities_outside_the_sentence():
    with pytest.raises(ValueError, match="outside the 3 tokens"):
        spans_to_tags([Span("PER", 2, 4)], 3, "bio")


def test_entity_types_and_scheme_tags():
    assert entity_types([["B-PER", "O"], ["S-LOC"]]) == ["LOC", "PER"]
    assert scheme_tags(["PER"], "bioes") == ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


@pytest.mark.parametrize("scheme", sorted(ENCODED))
def test_allowed_transitions_accept_every_well_formed_sequence(scheme):
    tags = scheme_tags(["PER", "LOC", "ORG"], scheme)
    index = {t: i for i, t in enumerate(tags)}
    trans, start, end = allowed_transitions(tags, scheme)
    seq = [index[t] for t in ENCODED[scheme]]
    assert start[seq[0]] and end[seq[-1]]
    assert all(trans[a, b] for a, b in zip(seq, seq[1:]))


@pytest.mark.parametrize(
    "scheme, prev, cur",
    [("bio", "O", "I-PER"), ("bio", "B-LOC", "I-PER"), ("bioes", "B-PER", "O"), ("bioes", "E-PER", "I-PER"),
     ("bmes", "O", "E-PER"), ("iob1", "O", "B-PER")],
)
def test_allowed_transitions_forbid_ill_formed_moves(scheme, prev, cur):
    tags = scheme_tags(["PER", "LOC"], scheme)
    trans, _, _ = allowed_transitions(tags, scheme)
    assert trans[tags.index(prev), tags.index(cur)] == 0


def test_allowed_transitions_forbid_an_open_entity_at_the_end_in_bioes():
    tags = scheme_tags(["PER"], "bioes")
    _, start, end = allowed_transitions(tags, "bioes")
    assert end[tags.index("B-PER")] == 0 and start[tags.index("E-PER")] == 0
