"""Conformance: every registered task family honours the same public contract.

For each task in ``pipeline.TASKS``, through the public API only: the config round-trips; a tiny
fit -> save -> load gives identical predictions; a batch job's rows equal ``predict``; the
SavedModel export takes raw text and passes its golden check.
"""

import json
import os

import keras
import pytest

from pipeline import TASKS, Pipeline
from pipeline.batch import predict_files

from test_lm import _config as lm_config
from test_seq2seq import _config as translation_config
from test_seq2seq import _toy_pairs
from test_tagging import EN_TAGS, EN_TOKENS, tagging_config
from tests.conftest import ZH_NEG, ZH_POS, tiny_config

LM_TEXTS = ["the cat sat on the mat", "the dog sat on the rug", "a cat saw the dog", "a dog saw a cat"] * 2


def _regression_config():
    # The plug-in example family (pipeline/tasks/regression, docs/tasks.md).
    config = tiny_config(vectorizer="embedding", type="rnn_regressor")
    config.update(task="regression")
    config["stages"]["decoder"] = {"type": "value", "minimum": 1, "maximum": 5}
    return config


#: task -> (config, training texts, training targets, raw texts to predict)
CASES = {
    "classification": (tiny_config(), ZH_POS + ZH_NEG, ["pos"] * 6 + ["neg"] * 6, ["很好看", "太差了", ""]),
    "tagging": (tagging_config(features={"shape": {}}), EN_TOKENS, EN_TAGS, ["Anna met Bob in Oslo .", "Acme Corp", ""]),
    "translation": (translation_config(), *_toy_pairs(24), ["hund katze", "haus", ""]),
    "language_model": (lm_config(max_length=12, size=8, max_tokens=5, temperature=0.0), LM_TEXTS, None, ["the cat", "a", ""]),
    "regression": (_regression_config(), ZH_POS + ZH_NEG, [5, 4, 5, 4, 5, 4, 1, 2, 1, 2, 1, 2], ["很好看", "太差了", ""]),
}


def test_conformance_covers_every_registered_task():
    assert set(CASES) == set(TASKS)


class RowsLogged(keras.callbacks.Callback):
    """An extra Keras callback noting, at each epoch's end, how many rows history.csv holds."""

    def __init__(self, path):
        super().__init__()
        self.path, self.rows = path, []

    def on_epoch_end(self, epoch, logs=None):
        with open(self.path, encoding="utf-8") as f:
            self.rows.append(len(f.read().splitlines()) - 1)  # less the header


#: task -> the RowsLogged figures of its fit in ``fitted``
ROWS_LOGGED = {}


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request, tmp_path_factory):
    config, texts, targets, queries = CASES[request.param]
    config = {**config, "training": {**config["training"], "csv_log": True, "checkpoint": False, "plots": False}}
    folder = tmp_path_factory.mktemp(request.param)
    # Trained into a run folder, which saves the pipeline there (folder/saved).
    rows_logged = RowsLogged(str(folder / "saved" / "history.csv"))
    p = Pipeline.from_config(config).fit(texts, targets, output_dir=str(folder / "saved"), epochs=2, callbacks=[rows_logged])
    ROWS_LOGGED[request.param] = rows_logged.rows
    return request.param, p, folder, queries


def test_conformance_fit_runs_extra_callbacks_after_its_own(fitted):
    # The pipeline's own CSVLogger has written each epoch's row before the extra callback runs.
    task, _, folder, _ = fitted
    assert ROWS_LOGGED[task] == [1, 2]
    assert os.path.isfile(folder / "saved" / "metrics.json")


def test_conformance_config_round_trips(fitted):
    _, p, _, _ = fitted
    assert Pipeline.from_config(p.get_config()).get_config() == p.get_config()


def test_conformance_save_then_load_predicts_identically(fitted):
    _, p, folder, queries = fitted
    loaded = Pipeline.load(str(folder / "saved"))
    assert loaded.get_config() == p.get_config()
    assert loaded.predict(queries) == p.predict(queries)


def test_conformance_batch_rows_equal_predict(fitted):
    task, p, folder, queries = fitted
    source = folder / "queries.txt"
    source.write_text("\n".join(queries) + "\n", encoding="utf-8")
    out = folder / "answers.jsonl"
    summary = predict_files(str(folder / "saved"), [str(source)], str(out), workers=0, overwrite=True, progress=False)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert summary["rows"] == len(queries) == len(rows) and [r["line"] for r in rows] == [1, 2, 3]
    for row, answer in zip(rows, Pipeline.load(str(folder / "saved")).predict(queries)):
        assert {k: row[k] for k in answer} == json.loads(json.dumps(answer)), task


def test_conformance_export_takes_raw_text_and_passes_its_golden_check(fitted):
    task, p, folder, queries = fitted
    report = p.export(str(folder / "saved_model"), samples=queries + ["ＡＢ ｃ 🙂", "x" * 300])
    assert report["checked"] and report["n_samples"] == len(queries) + 2
    assert report["signatures"]["serving_default"]["inputs"] == ["text"]
    assert report["signatures"]["serve_tokens"]["inputs"] == ["tokens"]
    assert os.path.isfile(folder / "saved_model" / "saved_model.pb")
