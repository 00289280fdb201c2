import json
import os
import subprocess
import sys

import pytest
import yaml

from pipeline.cli import main
from tests.conftest import ZH_NEG, ZH_POS, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "train.tsv"
    rows = [("pos", t) for t in ZH_POS] + [("neg", t) for t in ZH_NEG]
    data.write_text("label\ttext\n" + "".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    config = tiny_config()
    config["training"]["plots"] = True
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = root / "model"
    code = main(["train", str(config_path), "--train", str(data), "--dev", str(data), "--output", str(out), "--epochs", "2", "--quiet"])
    assert code == 0
    return {"root": root, "data": data, "model": out, "config": config_path}


def test_cli_train_writes_a_run_folder(trained):
    names = set(os.listdir(trained["model"]))
    assert {"pipeline.yaml", "metadata.json", "history.csv", "metrics.json", "training_curves.png", "confusion_matrix.png"} <= names


def test_cli_evaluate_json_prints_one_object(trained, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(trained["model"]), "--data", str(trained["data"]), "--json", "--quiet"]) == 0
    out = capsys.readouterr().out.strip()
    metrics = json.loads(out)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and "macro_f1" in metrics and metrics["examples"] == 12


def test_cli_predict_writes_one_row_per_input_in_order(trained, tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("很好看\n\n太差了\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained["model"]), "--input", str(inp), "--output", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert all(r["label"] in {"pos", "neg"} and isinstance(r["score"], float) for r in rows)


def test_cli_inspect_json(trained, capsys):
    capsys.readouterr()
    assert main(["inspect", str(trained["model"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["task"] == "classification" and info["stages"]["decoder"]["labels"] == ["neg", "pos"]


def test_cli_coverage_lists_unknown_tokens(trained, tmp_path, capsys):
    data = tmp_path / "new.tsv"
    data.write_text("label\ttext\npos\t鑫鑫鑫好\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["coverage", str(trained["model"]), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["top_unknown"][0] == ["鑫", 3]


def test_cli_validate_reports_config_errors(tmp_path, capsys):
    config = tiny_config()
    config["stages"]["vocabulary"]["max_size"] = -3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    assert "stages.vocabulary.max_size must be an integer" in capsys.readouterr().err


def test_cli_train_without_data_says_what_to_pass(trained):
    with pytest.raises(SystemExit, match="pass --train PATH or set data.train"):
        main(["train", str(trained["config"]), "--quiet"])


def test_cli_evaluate_bad_data_names_file_and_line(trained, tmp_path, capsys):
    data = tmp_path / "bad.tsv"
    data.write_bytes(b"label\ttext\npos\t\xff\n")
    assert main(["evaluate", str(trained["model"]), "--data", str(data), "--quiet"]) == 2
    assert "bad.tsv:2: not valid utf-8" in capsys.readouterr().err


def test_cli_help_works_for_every_command():
    for command in ("train", "evaluate", "predict", "export", "inspect", "coverage", "validate"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0


def test_cli_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "keras-text-pipeline" in out.stdout


def test_cli_export_writes_a_saved_model_and_refuses_to_overwrite(trained, tmp_path, capsys):
    out = tmp_path / "sm"
    assert main(["export", str(trained["model"]), "--output", str(out), "--quiet"]) == 0
    assert (out / "saved_model.pb").is_file()
    assert main(["export", str(trained["model"]), "--output", str(out), "--quiet"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["export", str(trained["model"]), "--output", str(out), "--overwrite", "--quiet"]) == 0


def test_cli_set_overrides_any_config_option_and_is_validated(trained, capsys):
    capsys.readouterr()
    assert main(["validate", str(trained["config"]), "--set", "stages.model.units=7", "--set", "training.seed=3"]) == 0
    assert "units=7" not in capsys.readouterr().err
    code = main(["validate", str(trained["config"]), "--set", "stages.vocabulary.max_size=-3"])
    assert code == 2 and "stages.vocabulary.max_size must be an integer" in capsys.readouterr().err
    code = main(["validate", str(trained["config"]), "--set", "stages.model.unitz=7"])
    assert code == 2 and "Did you mean 'units'?" in capsys.readouterr().err
    code = main(["validate", str(trained["config"]), "--set", "stages.model"])
    assert code == 2 and "--set expects PATH=VALUE" in capsys.readouterr().err


def test_cli_train_applies_set_overrides(trained, tmp_path):
    out = tmp_path / "model"
    code = main(["train", str(trained["config"]), "--train", str(trained["data"]), "--output", str(out), "--quiet",
                 "--set", "stages.model.units=3", "--set", "training.plots=false"])
    assert code == 0
    saved = yaml.safe_load((out / "pipeline.yaml").read_text(encoding="utf-8"))
    assert saved["stages"]["model"]["units"] == 3 and saved["training"]["plots"] is False


def test_cli_export_failure_is_one_line_without_a_traceback(trained, tmp_path, monkeypatch, capsys):
    from pipeline.export.classification import ClassificationExporter

    def disagree(self, loaded, samples):
        return [(0, "label 'x' != 'y'")], 0.0

    monkeypatch.setattr(ClassificationExporter, "compare", disagree)
    capsys.readouterr()
    assert main(["export", str(trained["model"]), "--output", str(tmp_path / "sm"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ktp: error: The exported SavedModel disagrees") and "Traceback" not in err
    assert not (tmp_path / "sm").exists()
