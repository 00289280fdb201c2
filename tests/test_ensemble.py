import json

import numpy as np
import pytest

from pipeline import Pipeline
from pipeline.cli import main
from pipeline.ensemble import join_pipelines
from tests.conftest import tiny_config
from test_tagging import EN_TAGS, EN_TOKENS, tagging_config


def _fit_save(config, texts, labels, seed, path, **fit):
    config["training"]["seed"] = seed
    p = Pipeline.from_config(config).fit(texts, labels, **fit)
    p.save(str(path))
    return p


def test_join_pipelines_equals_the_ensemble_trained_in_one_run(zh_data, tmp_path):
    for seed in (3, 4):
        _fit_save(tiny_config(), *zh_data, seed, tmp_path / f"s{seed}")
    joined = join_pipelines([tmp_path / "s3", tmp_path / "s4"])
    cfg = tiny_config(ensemble=2)
    cfg["training"]["seed"] = 3
    one_run = Pipeline.from_config(cfg).fit(*zh_data)
    texts = ["很好看", "服务太差", "一般"]
    np.testing.assert_allclose(joined.predict_scores(texts), one_run.predict_scores(texts), rtol=1e-5, atol=1e-6)
    assert joined.get_config()["stages"]["model"]["ensemble"] == 2


def test_join_pipelines_refuses_members_of_another_config_or_other_data(zh_data, tmp_path):
    texts, labels = zh_data
    _fit_save(tiny_config(), texts, labels, 1, tmp_path / "a")
    _fit_save(tiny_config(units=6), texts, labels, 1, tmp_path / "units")
    _fit_save(tiny_config(), texts[:-2], labels[:-2], 1, tmp_path / "data")
    with pytest.raises(ValueError, match=r"different configs \(stages.model.units\)"):
        join_pipelines([tmp_path / "a", tmp_path / "units"])
    with pytest.raises(ValueError, match="fitted assets of stage 'vocabulary' .*vocab.txt"):
        join_pipelines([tmp_path / "a", tmp_path / "data"])
    with pytest.raises(ValueError, match="at least two"):
        join_pipelines([tmp_path / "a"])


def test_cli_ensemble_joins_crf_taggers_that_save_and_load(tmp_path, capsys):
    for seed in (5, 6):
        _fit_save(tagging_config(), EN_TOKENS * 2, EN_TAGS * 2, seed, tmp_path / f"s{seed}", epochs=1)
    out = tmp_path / "joined"
    assert main(["ensemble", str(tmp_path / "s5"), str(tmp_path / "s6"), "--output", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == str(out)
    loaded = Pipeline.load(str(out))
    assert loaded.stage("model").is_ensemble
    singles = [Pipeline.load(str(tmp_path / f"s{s}")).stage("model").crf.get_weights() for s in (5, 6)]
    for joined, a, b in zip(loaded.stage("model").crf.get_weights(), *singles):
        np.testing.assert_allclose(joined, (a + b) / 2, rtol=1e-6)
    assert main(["ensemble", str(out), str(tmp_path / "s5"), "--output", str(tmp_path / "again"), "--quiet"]) == 2
    assert "is an ensemble of 2 networks already" in capsys.readouterr().err
    assert main(["ensemble", str(tmp_path / "s5"), str(tmp_path / "s6"), "--output", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
