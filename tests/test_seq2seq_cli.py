"""``ktp translate`` and ``ktp generate`` (pipeline.cli_seq2seq)."""

import json

import pytest

from pipeline import Pipeline
from pipeline.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tests.test_lm import TEXTS
    from tests.test_lm import _config as lm_config
    from tests.test_seq2seq import _config, _toy_pairs

    root = tmp_path_factory.mktemp("cli")
    sources, targets = _toy_pairs(16)
    tr = Pipeline.from_config(_config()).fit(sources, targets, epochs=2)
    tr.save(str(root / "tr"))
    lm = Pipeline.from_config(lm_config()).fit(TEXTS, epochs=2)
    lm.save(str(root / "lm"))
    return root, sources


def test_ktp_translate_prints_one_line_per_text(saved, capsys):
    root, sources = saved
    assert main(["translate", str(root / "tr"), sources[0], sources[1], "--beam", "2", "--quiet"]) == 0
    assert capsys.readouterr().out.count("\n") == 2  # one line per text (an untrained model may say nothing)


def test_ktp_translate_json_and_attention_picture(saved, capsys, tmp_path):
    root, sources = saved
    png = tmp_path / "att.png"
    assert main(["translate", str(root / "tr"), sources[0], "--plot-attention", str(png), "--json", "--quiet"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert png.exists() and answer["source_tokens"] == sources[0].split()


def test_ktp_translate_refuses_zero_beam(saved, capsys):
    root, sources = saved
    assert main(["translate", str(root / "tr"), sources[0], "--beam", "0", "--quiet"]) == 2
    assert "beam_width must be an integer >= 1" in capsys.readouterr().err


def test_ktp_translate_refuses_a_language_model(saved, capsys):
    root, _ = saved
    assert main(["translate", str(root / "lm"), "x", "--quiet"]) == 2
    assert "needs a translation pipeline" in capsys.readouterr().err


def test_ktp_generate_with_sampling_options(saved, capsys):
    root, _ = saved
    args = ["generate", str(root / "lm"), "the cat", "--max-tokens", "3", "--temperature", "0.5", "--top-k", "3", "--seed", "1", "--json", "--quiet"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt"] == "the cat" and len(out["generated"].split()) <= 3


def test_ktp_export_of_a_language_model_writes_a_saved_model_and_names_overwrite(saved, tmp_path, capsys):
    root, _ = saved
    out = tmp_path / "lm_sm"
    capsys.readouterr()
    assert main(["export", str(root / "lm"), "--output", str(out), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (out / "saved_model.pb").is_file() and "serving_default" in report["signatures"]
    assert main(["export", str(root / "lm"), "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ktp: error: ") and "--overwrite" in err
