"""The regression family: the plug-in example (pipeline/tasks/regression, docs/tasks.md).

The conformance suite runs it through the shared contract (config, save/load, batch, export);
these tests cover what is its own: numeric targets, the value decoder, its metrics and the CLI.
"""

import json

import numpy as np
import pytest

from pipeline import ConfigError, DataError, Pipeline
from pipeline.cli import main
from pipeline.tasks.regression import ValueDecoder, regression_report

GOOD = ["很好看", "非常好", "很满意", "好看极了", "不错，推荐", "很好很好"]
BAD = ["很难看", "非常差", "不满意", "难看极了", "太差，失望", "很差很差"]


def _config(**decoder):
    return {
        "task": "regression",
        "stages": {
            "tokenizer": {"type": "char"},
            "vocabulary": {},
            "vectorizer": {"type": "embedding", "dim": 8, "max_length": 12},
            "model": {"type": "rnn_regressor", "cell": "gru", "units": 8, "bidirectional": False, "dropout": 0.0,
                      "learning_rate": 0.02},
            "decoder": {"type": "value", **decoder},
        },
        "training": {"epochs": 30, "batch_size": 4, "verbose": 0, "plots": False, "checkpoint": False, "seed": 1},
    }


def test_value_decoder_scales_targets_and_clips_answers():
    d = ValueDecoder(minimum=1, maximum=5).fit([1, 3, 5])
    encoded = d.encode([1, 3, 5])
    assert encoded.shape == (3, 1) and encoded.mean() == pytest.approx(0) and encoded.std() == pytest.approx(1)
    assert [a["value"] for a in d.decode(encoded)] == pytest.approx([1, 3, 5])
    assert [a["value"] for a in d.decode(np.array([[10.0], [-10.0]]))] == [5.0, 1.0]
    assert ValueDecoder().fit([2, 2]).std_ == 1.0  # constant targets: no division by zero


def test_value_decoder_refuses_what_is_not_a_number():
    with pytest.raises(DataError, match=r"target 2 is 'high': a regression target must be a finite number"):
        ValueDecoder().fit([1, "high"])
    with pytest.raises(DataError, match="target 1 is nan"):
        ValueDecoder().fit([float("nan"), 1])
    with pytest.raises(ConfigError, match="maximum must be at least minimum"):
        ValueDecoder(minimum=5, maximum=1)


def test_regression_report_figures():
    r = regression_report([1, 2, 3, 4], [1, 2, 3, 6])
    assert r["n"] == 4 and r["mae"] == pytest.approx(0.5) and r["rmse"] == pytest.approx(1.0)
    assert r["r2"] == pytest.approx(1 - 4 / 5) and 0.9 < r["pearson"] < 1
    assert regression_report([2, 2], [1, 3])["r2"] == 0.0 and regression_report([], [])["n"] == 0


def test_read_names_the_line_of_a_target_that_is_not_a_number(tmp_path):
    data = tmp_path / "train.tsv"
    data.write_text("text\tlabel\n很好\t4.5\n很差\tlow\n一般\t3\n", encoding="utf-8")
    p = Pipeline.from_config(_config())
    with pytest.raises(DataError, match=r"train.tsv:3: the target 'low' is not a number; data.label_column"):
        p.read(str(data))
    cfg = _config()
    cfg["data"] = {"on_error": "skip"}
    corpus = Pipeline.from_config(cfg).read(str(data))
    assert corpus.texts == ["很好", "一般"] and corpus.labels == [4.5, 3.0] and corpus.skipped[0][1] == 3


def test_ktp_trains_and_evaluates_a_regressor_that_learns(tmp_path, capsys):
    rows = [f"{t}\t{v}" for t, v in zip(GOOD + BAD, [5, 5, 4, 5, 4, 5, 1, 1, 2, 1, 2, 1])]
    data = tmp_path / "ratings.tsv"
    data.write_text("text\tlabel\n" + "\n".join(rows * 2) + "\n", encoding="utf-8")
    config = tmp_path / "ratings.yaml"
    config.write_text(json.dumps(_config(minimum=1, maximum=5)), encoding="utf-8")  # JSON is YAML
    out = tmp_path / "run"
    assert main(["train", str(config), "--train", str(data), "--dev", str(data), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data), "--json", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["examples"] == 24 and metrics["pearson"] > 0.9 and metrics["mae"] < 1.0, metrics
    dev = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["dev"]
    assert dev["mae"] == pytest.approx(metrics["mae"])
    answers = Pipeline.load(str(out)).predict(["很好看", "很差"])
    assert 1 <= answers[1]["value"] < answers[0]["value"] <= 5
