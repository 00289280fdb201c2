"""benchmarks/baselines.py: the carved test split and the linear baselines, on tiny in-memory data."""

import importlib.util
import os
from collections import Counter

import pytest

pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def baselines():
    spec = importlib.util.spec_from_file_location("baselines", os.path.join(ROOT, "benchmarks", "baselines.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sentiment(n, seed):
    import random

    rng = random.Random(seed)
    good, bad = ["great", "lovely", "superb", "moving"], ["awful", "dull", "boring", "tedious"]
    filler = ["the", "film", "was", "a", "story", "and", "really", "plot"]
    texts, labels = [], []
    for i in range(n):
        label = str(i % 2)
        words = rng.sample(filler, 4) + [rng.choice(good if label == "1" else bad)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def test_carve_test_is_deterministic(baselines):
    labels = [str(i % 3) for i in range(500)]
    assert baselines.carve_test(500, 0.1, seed=13, labels=labels) == baselines.carve_test(500, 0.1, seed=13, labels=labels)
    assert baselines.carve_test(500, 0.1, seed=13) == baselines.carve_test(500, 0.1, seed=13)
    assert baselines.carve_test(500, 0.1, seed=13)[1] != baselines.carve_test(500, 0.1, seed=14)[1]


@pytest.mark.parametrize("stratify", [False, True])
def test_carve_test_parts_are_disjoint_and_cover_train(baselines, stratify):
    labels = [str(i % 4) for i in range(1003)] if stratify else None
    keep, test = baselines.carve_test(1003, 0.1, seed=13, labels=labels)
    assert not set(keep) & set(test)
    assert sorted(keep + test) == list(range(1003))
    assert keep == sorted(keep) and test == sorted(test)


@pytest.mark.parametrize("n", [10, 95, 1000, 6920])
def test_carve_test_takes_ten_percent(baselines, n):
    labels = ["pos" if i % 5 else "neg" for i in range(n)]
    assert len(baselines.carve_test(n, 0.1)[1]) == round(0.1 * n)
    assert len(baselines.carve_test(n, 0.1, labels=labels)[1]) == round(0.1 * n)


def test_carve_test_stratifies_by_label(baselines):
    labels = ["a"] * 900 + ["b"] * 100
    _, test = baselines.carve_test(1000, 0.1, seed=13, labels=labels)
    assert Counter(labels[i] for i in test) == {"a": 90, "b": 10}


def test_carve_test_keeps_groups_together(baselines):
    groups = [i // 7 for i in range(700)]  # 100 documents of 7 sentences
    keep, test = baselines.carve_test(700, 0.1, seed=13, groups=groups)
    assert not {groups[i] for i in keep} & {groups[i] for i in test}
    assert len(test) == 70 and sorted(keep + test) == list(range(700))


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_carve_test_rejects_a_fraction_outside_0_1(baselines, fraction):
    with pytest.raises(ValueError, match="fraction must be a number strictly between 0 and 1"):
        baselines.carve_test(100, fraction)


def test_tfidf_svc_learns_a_tiny_sentiment_set_and_picks_c_on_dev(baselines):
    texts, labels = _sentiment(120, 1)
    # Six positives to one negative: with C this small the weights stay near 0 and the SVM
    # answers the majority class for every text, half of the balanced dev set right.
    kept = [i for i in range(120) if labels[i] == "1" or i % 6 == 0]
    train = ([texts[i] for i in kept], [labels[i] for i in kept])
    dev, test = _sentiment(30, 2), _sentiment(30, 3)
    result = baselines.tfidf_svc(train, dev, test, c_grid=(1e-6, 1.0), word_ngrams=(1, 2), char_ngrams=(2, 5))
    assert result["dev_by_C"] == {"1e-06": 0.5, "1.0": 1.0}
    assert result["C"] == 1.0
    assert result["dev"] == 1.0 and result["test"] == 1.0
    assert result["features"] > 0 and result["fit_seconds"] >= 0


def test_tfidf_svc_scores_the_test_set_it_is_given(baselines):
    train, dev = _sentiment(80, 1), _sentiment(30, 2)
    flipped = (dev[0], ["1" if y == "0" else "0" for y in dev[1]])
    result = baselines.tfidf_svc(train, dev, flipped, c_grid=(1.0,))
    assert result["dev"] == 1.0 and result["test"] == 0.0


def test_tfidf_svc_without_a_test_set_scores_dev_only(baselines):
    train, dev = _sentiment(80, 1), _sentiment(30, 2)
    result = baselines.tfidf_svc(train, dev, ([], []), c_grid=(1.0,))
    assert result["dev"] == 1.0 and result["test"] is None and result["_scores"]["test"] is None


def test_test_fraction_0_trains_the_baseline_on_all_of_train(baselines, tmp_path):
    import json

    (tmp_path / "sst2").mkdir()
    for name, (texts, labels) in (("train.txt", _sentiment(60, 1)), ("dev.txt", _sentiment(20, 2))):
        (tmp_path / "sst2" / name).write_text("".join(f"{y} {x}\n" for x, y in zip(texts, labels)), encoding="utf-8")
    out = tmp_path / "rows.json"
    argv = ["--corpus", "sst2", "--data-dir", str(tmp_path), "--c-grid", "1", "--json", str(out)]
    assert baselines.main([*argv, "--test-fraction", "0"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["corpora"][0]["trained_on"] == result["corpora"][0]["train_examples"] == 60
    assert result["corpora"][0]["carved_test"] == 0
    assert result["rows"][0]["dev"] == 1.0 and result["rows"][0]["test"] is None
    assert baselines.main(argv) == 0  # the default carves 10 %
    assert json.loads(out.read_text(encoding="utf-8"))["corpora"][0]["trained_on"] == 54


@pytest.mark.parametrize("fraction", ["1", "-0.1", "1.5"])
def test_test_fraction_must_be_0_or_between_0_and_1(baselines, fraction):
    with pytest.raises(SystemExit):
        baselines.parse_args(["--test-fraction", fraction])


def test_tfidf_svc_scores_give_its_predictions(baselines):
    import numpy as np

    train, dev = _sentiment(80, 1), _sentiment(30, 2)
    scores = baselines.tfidf_svc(train, dev, dev, c_grid=(1.0,))["_scores"]
    assert scores["classes"] == ["0", "1"] and scores["dev"].shape == (30, 2)
    assert list(np.asarray(scores["classes"])[scores["test"].argmax(axis=1)]) == dev[1]


def _fusion_case():
    import numpy as np

    # The SVM is right on dev rows 0-2 and wrong on row 3; the pipeline, unsure, leans the
    # wrong way on rows 0-2 and is sure and right on row 3. Only a mix gets all four.
    svc = {"classes": ["neg", "pos"], "dev": np.array([[-1, 1], [-1, 1], [1, -1], [-1, 1]], dtype=float) * 0.5}
    rnn = {"classes": ["pos", "neg"], "dev": np.array([[0.45, 0.55], [0.45, 0.55], [0.55, 0.45], [0.01, 0.99]])}
    svc["test"], rnn["test"] = svc["dev"], rnn["dev"]
    return svc, rnn, ["pos", "pos", "neg", "neg"]


def test_late_fusion_picks_a_mix_on_dev_that_beats_both_models(baselines):
    svc, rnn, y = _fusion_case()
    fused = baselines.late_fusion(svc, rnn, y, y)
    assert fused["dev"] == 1.0 and fused["test"] == 1.0
    assert 0 < fused["weight"] < 1
    # steps=1 tries w = 0 and w = 1 only: each model alone misses a row
    assert baselines.late_fusion(svc, rnn, y, y, steps=1)["dev"] == 0.75


def test_late_fusion_scores_test_with_the_weight_picked_on_dev(baselines):
    svc, rnn, y = _fusion_case()
    flipped = ["neg" if v == "pos" else "pos" for v in y]
    assert baselines.late_fusion(svc, rnn, y, flipped)["test"] == 0.0


def test_late_fusion_refuses_models_with_different_classes(baselines):
    svc, rnn, y = _fusion_case()
    rnn["classes"] = ["pos", "neutral"]
    with pytest.raises(ValueError, match="different classes"):
        baselines.late_fusion(svc, rnn, y, y)


def test_fuse_needs_a_pipeline(baselines):
    with pytest.raises(SystemExit):
        baselines.parse_args(["--corpus", "sst2", "--fuse"])


def test_crf_tags_a_tiny_ner_set(baselines):
    pytest.importorskip("sklearn_crfsuite")
    sentences = [(["Paris", "is", "big"], ["B-LOC", "O", "O"]), (["I", "met", "John", "Smith"], ["O", "O", "B-PER", "I-PER"]),
                 (["Rome", "is", "old"], ["B-LOC", "O", "O"]), (["We", "met", "Anna", "Jones"], ["O", "O", "B-PER", "I-PER"])]
    data = ([s for s, _ in sentences] * 5, [t for _, t in sentences] * 5)
    result = baselines.crf(data, data, data, c2_grid=(0.1,), iterations=50)
    assert result["dev"] == 1.0 and result["test"] == 1.0
    assert result["dev_report"]["per_type_f1"] == {"LOC": 1.0, "PER": 1.0}
    no_test = baselines.crf(data, data, ([], []), c2_grid=(0.1,), iterations=50)
    assert no_test["dev"] == 1.0 and no_test["test"] is None and no_test["test_report"] is None
