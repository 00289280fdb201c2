import json
import os
import re
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


# -- issue #17: first use without surprises ----------------------------------------------------------
def _tiny_run(tmp_path, name="run", **training):
    """A tiny config and TSV corpus in ``tmp_path``; returns (config path, data path, output)."""
    data = tmp_path / "train.tsv"
    rows = [("pos", t) for t in ZH_POS] + [("neg", t) for t in ZH_NEG]
    data.write_text("label\ttext\n" + "".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    config = tiny_config()
    config["training"].update(training)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config_path, data, tmp_path / name


def test_cli_train_refuses_a_non_empty_run_folder_without_overwrite(trained, capsys):
    model_file = trained["model"] / "model" / "model.keras"
    before = model_file.stat().st_mtime_ns
    capsys.readouterr()
    code = main(["train", str(trained["config"]), "--train", str(trained["data"]), "--output", str(trained["model"]), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"ktp: error: {trained['model']} already holds a training run") and "--overwrite" in err
    assert model_file.stat().st_mtime_ns == before


def test_cli_train_overwrite_removes_everything_the_old_model_left(tmp_path):
    config_path, data, out = _tiny_run(tmp_path, plots=True)
    assert main(["train", str(config_path), "--train", str(data), "--dev", str(data), "--output", str(out), "--quiet"]) == 0
    # What an earlier run may have left: an export, ensemble members, TensorBoard logs, an
    # attention picture, an old checkpoint; and a file of the user's own.
    for stale in ("saved_model/saved_model.pb", "members/member_2/history.csv", "logs/train/events", "attention.png",
                  "checkpoints/old.keras"):
        (out / stale).parent.mkdir(parents=True, exist_ok=True)
        (out / stale).write_text("stale", encoding="utf-8")
    (out / "NOTES.md").write_text("mine", encoding="utf-8")
    old_metrics = (out / "metrics.json").read_text(encoding="utf-8")
    args = ["train", str(config_path), "--train", str(data), "--output", str(out), "--quiet", "--set", "training.seed=7"]
    assert main([*args, "--overwrite"]) == 0
    names = set(os.listdir(out))
    assert not names & {"saved_model", "members", "logs", "attention.png", "confusion_matrix.png"}
    assert os.listdir(out / "checkpoints") == ["best.keras"]
    assert (out / "NOTES.md").read_text(encoding="utf-8") == "mine"
    assert "dev" in json.loads(old_metrics) and "dev" not in json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert yaml.safe_load((out / "pipeline.yaml").read_text(encoding="utf-8"))["training"]["seed"] == 7


def _without_tensorboard(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "tensorboard" else find_spec(name, *a, **k))


@pytest.mark.parametrize("command", ["validate", "train"])
def test_cli_tensorboard_without_the_package_is_one_line_saying_how_to_install_it(command, tmp_path, monkeypatch, capsys):
    _without_tensorboard(monkeypatch)
    config_path, data, out = _tiny_run(tmp_path)
    extra = ["--train", str(data), "--output", str(out)] if command == "train" else []
    capsys.readouterr()
    assert main([command, str(config_path), "--set", "training.tensorboard=true", *extra, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ktp: error: training.tensorboard needs the tensorboard package") and 'pip install -e ".[tensorboard]"' in err
    assert not out.exists()


def test_cli_tensorboard_extra_is_declared():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert any(req.startswith("tensorboard") for req in extras["tensorboard"])


def test_cli_train_evaluate_and_coverage_read_a_csv_by_its_extension(tmp_path, capsys):
    rows = [("pos", t) for t in ZH_POS] + [("neg", t) for t in ZH_NEG]
    data = tmp_path / "train.csv"
    data.write_text("label,text\n" + "".join(f"{l},{t.replace('，', ' ')}\n" for l, t in rows), encoding="utf-8")
    config_path, _, out = _tiny_run(tmp_path)
    assert main(["train", str(config_path), "--train", str(data), "--output", str(out), "--quiet"]) == 0
    assert yaml.safe_load((out / "pipeline.yaml").read_text(encoding="utf-8"))["data"]["format"] == "tsv"
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 12
    assert main(["coverage", str(out), "--data", str(data), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["coverage"] > 0.9


def test_cli_train_keeps_a_data_format_the_config_sets(tmp_path, capsys):
    data = tmp_path / "train.csv"
    data.write_text("label\ttext\n" + "".join(f"pos\t{t}\n" for t in ZH_POS) + "".join(f"neg\t{t}\n" for t in ZH_NEG), encoding="utf-8")
    config_path, _, out = _tiny_run(tmp_path)
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["data"] = {"format": "tsv"}  # a TSV file that happens to be called .csv
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert main(["train", str(config_path), "--train", str(data), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data), "--format", "tsv", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 12


@pytest.mark.parametrize("command", ["inspect", "coverage", "validate"])
def test_cli_help_describes_the_command_and_every_option(command):
    from pipeline.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command]
    assert parser.description and len(parser.description) > 60
    undocumented = [a.dest for a in parser._actions if a.dest != "help" and not a.help]
    assert undocumented == []


def test_cli_every_command_takes_verbose():
    from pipeline.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert all(any(a.dest == "verbose" for a in p._actions) for p in sub.choices.values())


def _our_lines_only(stderr: str) -> list[str]:
    """The stderr lines that are not ours (our log lines and one-line errors)."""
    ours = re.compile(r"^(Training |Tokenized |Vocabulary|Trained in |Dev: |Removed the earlier run|Reading .* as |"
                      r"ktp predict: |ktp: error: )")
    return [line for line in stderr.splitlines() if line.strip() and not ours.match(line)]


def _run_ktp_script(tmp_path, script: str, env_extra=None, drop_tf_env=False):
    env = {k: v for k, v in os.environ.items() if k != "KTP_VERBOSE" and not (drop_tf_env and k == "TF_CPP_MIN_LOG_LEVEL")}
    env.update(env_extra or {})
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False)


def test_cli_plain_train_and_beam_predict_print_our_lines_only(tmp_path):
    """Library loggers (TensorFlow, absl, Beam's runner, JAX) stay quiet; --verbose brings them back."""
    pytest.importorskip("apache_beam")
    config_path, data, out = _tiny_run(tmp_path)
    (tmp_path / "in.txt").write_text("很好看\n太差了\n", encoding="utf-8")
    script = f"""
from pipeline.cli import main
assert main(["train", {str(config_path)!r}, "--train", {str(data)!r}, "--output", {str(out)!r}]) == 0
assert main(["predict", {str(out)!r}, "-i", "in.txt", "-o", "out.jsonl", "--runner", "beam", "--quiet"]) == 0
"""
    plain = _run_ktp_script(tmp_path, script, {"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert _our_lines_only(plain.stderr) == []
    assert "Trained in " in plain.stderr


@pytest.mark.parametrize("how", ["flag", "env", "plain"])
def test_cli_verbose_brings_library_log_lines_back(how, tmp_path, monkeypatch, capsys):
    import logging

    config_path, _, _ = _tiny_run(tmp_path)
    monkeypatch.delenv("KTP_VERBOSE", raising=False)
    if how == "env":
        monkeypatch.setenv("KTP_VERBOSE", "1")
    assert main(["validate", str(config_path), *(["--verbose"] if how == "flag" else [])]) == 0
    capsys.readouterr()
    logging.getLogger("apache_beam.runners").info("beam chatter")
    logging.getLogger("tensorflow").warning("tf chatter")
    logging.getLogger("ktp").info("our line")
    err = capsys.readouterr().err
    assert "our line" in err
    assert ("beam chatter" in err and "tf chatter" in err) == (how != "plain")
    assert ("beam chatter" in err or "tf chatter" in err) == (how != "plain")


def test_cli_plain_validate_prints_no_tensorflow_start_up_lines(tmp_path):
    config_path, _, _ = _tiny_run(tmp_path)
    script = f"from pipeline.cli import main; raise SystemExit(main(['validate', {str(config_path)!r}]))"
    done = _run_ktp_script(tmp_path, script, drop_tf_env=True)
    assert done.returncode == 0 and "valid classification pipeline" in done.stdout
    assert done.stderr == ""


def test_cli_validate_suggests_the_closest_stage_type(tmp_path, capsys):
    config_path, _, _ = _tiny_run(tmp_path)
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["stages"]["tokenizer"]["type"] = "jeiba"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    capsys.readouterr()
    assert main(["validate", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ktp: error: stages.tokenizer.type must name a registered stage type. Did you mean 'jieba'?")
    assert err.rstrip().endswith("Received: type='jeiba'")


def test_registry_get_suggests_the_closest_registered_name():
    # (stages.registry; here until tests/test_registry.py takes it)
    from stages.errors import ConfigError
    from stages.registry import get

    with pytest.raises(ConfigError, match=r"stages\.tokenizer\.type must name a registered tokenizer\. Did you mean 'jieba'\? "
                       r"One of: .*Received: type='jeiba'"):
        get("tokenizer", "jeiba", "stages.tokenizer")
    with pytest.raises(ConfigError, match=r"Did you mean 'rnn_classifier'\?"):
        get("model", "RNN_Classifier", "stages.model")
    with pytest.raises(ConfigError, match=r"must name a registered vectorizer: one of .*Received: type='spacy'"):
        get("vectorizer", "spacy", "stages.vectorizer")


def test_native_noise_filter_drops_runtime_notices_and_keeps_everything_else(tmp_path):
    """Lines written straight to descriptor 2 (as TensorFlow's C++ runtime does): the known
    notices go, real errors, our lines and partial progress lines come out in order."""
    script = r"""
import os
from stages.backend import NativeNoiseFilter
with NativeNoiseFilter() as f:
    assert f.active
    os.write(2, b"E0000 00:00:1733178.123456   12345 mkl_util.h:9] oneDNN supports DT_BOOL only on platforms with AVX-512. "
                b"Falling back to the default Eigen-based implementation if present.\n")
    os.write(2, b"Training starts\n")
    os.write(2, b"E0000 00:00:1733178.1   7 op.cc:3] a real error\n")
    os.write(2, b"I0000 00:00:1.2   7 cpu_feature_guard.cc:1] This TensorFlow binary is optimized\n")
    os.write(2, b"W00")  # a record split across writes is still recognised
    os.write(2, b"00 00:00:1.2   7 x.cc:1] chatter\n")
    os.write(2, b"1/3 progress")  # no newline: still forwarded
os.write(2, b"\nafter\n")
"""
    result = _run_ktp_script(tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "Training starts\nE0000 00:00:1733178.1   7 op.cc:3] a real error\n1/3 progress\nafter\n"
