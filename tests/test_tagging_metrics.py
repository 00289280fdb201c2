import random

import pytest

from pipeline.tagging_metrics import entity_report, tags_report, token_accuracy


def assert_equals_seqeval(report, gold, pred):
    """``report`` (a tags_report or a tagger's evaluate) holds seqeval's figures for gold/pred."""
    import seqeval.metrics as seqeval

    assert report["precision"] == pytest.approx(seqeval.precision_score(gold, pred))
    assert report["recall"] == pytest.approx(seqeval.recall_score(gold, pred))
    assert report["f1"] == pytest.approx(seqeval.f1_score(gold, pred))
    assert report["accuracy"] == pytest.approx(seqeval.accuracy_score(gold, pred))
    expected = seqeval.classification_report(gold, pred, output_dict=True)
    for type_, row in report["per_type"].items():
        assert row["precision"] == pytest.approx(expected[type_]["precision"])
        assert row["recall"] == pytest.approx(expected[type_]["recall"])
        assert row["f1"] == pytest.approx(expected[type_]["f1-score"])
        assert row["support"] == expected[type_]["support"]
    if "macro_f1" in report:
        assert report["macro_f1"] == pytest.approx(expected["macro avg"]["f1-score"])


def _random_corpus(seed, n=200):
    rng = random.Random(seed)
    pool = ["O"] * 4 + [f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "ORG")]
    gold, pred = [], []
    for _ in range(n):
        length = rng.randint(1, 10)
        g = [rng.choice(pool) for _ in range(length)]
        # Predictions: mostly the gold tag, sometimes another one.
        p = [t if rng.random() < 0.7 else rng.choice(pool) for t in g]
        gold.append(g)
        pred.append(p)
    return gold, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tags_report_equals_seqeval(seed):
    pytest.importorskip("seqeval.metrics")
    gold, pred = _random_corpus(seed)
    assert_equals_seqeval(tags_report(gold, pred), gold, pred)


def test_entity_report_needs_exact_boundaries_and_type():
    report = entity_report([[("PER", 0, 2), ("LOC", 3, 4)]], [[("PER", 0, 1), ("ORG", 3, 4)]])
    assert report["correct_entities"] == 0 and report["f1"] == 0.0


def test_entity_report_of_nothing_is_zero():
    report = entity_report([[]], [[]])
    assert report["f1"] == 0.0 and report["per_type"] == {}


def test_entity_report_refuses_unpaired_sentences():
    with pytest.raises(ValueError, match="1 gold sentences but 2 predicted"):
        entity_report([[]], [[], []])


def test_token_accuracy_refuses_unpaired_tokens():
    with pytest.raises(ValueError, match="2 gold tags but 1 predicted"):
        token_accuracy([["O", "O"]], [["O"]])
