import numpy as np
import pytest

from pipeline.metrics import classification_report, multilabel_report


def test_report_counts_a_hand_worked_example():
    # true: a a b b c ; pred: a b b b a
    r = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert r["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["c"]["f1"] == 0.0
    assert r["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert r["micro_f1"] == pytest.approx(0.6)


def test_multilabel_report_uses_subset_accuracy():
    y = np.array([[1, 0], [1, 1]])
    p = np.array([[1, 0], [1, 0]])
    r = multilabel_report(y, p, ["a", "b"])
    assert r["accuracy"] == 0.5
    assert r["per_class"]["b"]["recall"] == 0.0
    assert r["micro_precision"] == 1.0
