"""Tests of pipeline.beam: the Beam batch-prediction job on the DirectRunner.

These need the optional ``beam`` extra (``pip install -e ".[beam]"``); without
apache_beam they are skipped.
"""

import json
import os

import pytest

beam = pytest.importorskip(
    "apache_beam", reason='apache_beam is not installed: pip install -e ".[beam]" to run the Beam tests'
)

from pipeline.batch import BatchError, RowFormatter, predict_files, unescape_cell  # noqa: E402
from pipeline.beam import existing_shards, merge_shards, run_beam  # noqa: E402

POS = ["很好看", "非常喜欢", "服务很好", "质量不错", "推荐购买"]
NEG = ["太难看了", "非常讨厌", "服务很差", "质量很差", "不会再来"]
CHARS = "很好看太难喜欢讨厌非常差劲服务质量不错推荐购买会再来"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny saved char-level classifier (LSTM, 4 units, 1 epoch)."""
    from pipeline import Pipeline

    p = Pipeline.from_config({
        "stages": {
            "tokenizer": {"type": "char"},
            "vocabulary": {},
            "vectorizer": {"type": "embedding", "dim": 8, "max_length": 24},
            "model": {"type": "rnn_classifier", "cell": "lstm", "units": 4},
            "decoder": {"type": "label"},
        },
        "training": {"epochs": 1, "batch_size": 4, "verbose": 0, "plots": False, "checkpoint": False, "csv_log": False},
    })
    p.fit(POS + NEG, ["pos"] * 5 + ["neg"] * 5)
    path = str(tmp_path_factory.mktemp("beam_model") / "model")
    p.save(path)
    return path


@pytest.fixture()
def corpus(tmp_path):
    import random

    rng = random.Random(11)
    folder = tmp_path / "corpus"
    folder.mkdir()
    for k in range(3):
        lines = ["".join(rng.choice(CHARS) for _ in range(rng.randint(0, 30))) for _ in range(120)]
        (folder / f"part{k}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "part3.txt").write_bytes(b"\xe5\xa5\xbd\n\xff broken\n")
    return str(folder)


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_run_beam_matches_the_single_machine_output(tmp_path, model_dir, corpus):
    local = str(tmp_path / "local.jsonl")
    predict_files(model_dir, corpus, local, workers=0, chunk_size=50)
    merged = str(tmp_path / "beam" / "out.jsonl")
    os.makedirs(os.path.dirname(merged))
    summary = run_beam(model_dir, corpus, merged, chunk_size=50, num_shards=2, merge=True)
    assert len(summary["shards"]) == 2 and all(os.path.basename(s).startswith("out-0000") for s in summary["shards"])
    assert summary["rows"] == 362 and summary["errors"] == 1
    a, b = _rows(local), _rows(merged)
    assert [(r["file"], r["line"], r.get("label"), "error" in r) for r in a] == [
        (r["file"], r["line"], r.get("label"), "error" in r) for r in b
    ]
    assert max(abs(r["score"] - s["score"]) for r, s in zip(a, b) if "score" in r) < 1e-6


def test_run_beam_writes_tsv_shards_with_a_header(tmp_path, model_dir, corpus):
    out = str(tmp_path / "out.tsv")
    run_beam(model_dir, corpus, out, num_shards=1)
    (shard,) = existing_shards(out)
    lines = open(shard, encoding="utf-8").read().splitlines()
    assert lines[0].split("\t") == ["file", "line", "label", "score", "error"] and len(lines) == 363


def _tsv_file_cells(path):
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""
    return [(unescape_cell(cells[0]), int(cells[1])) for cells in (line.split("\t") for line in lines[1:-1])]


def test_merge_shards_puts_tsv_rows_in_input_order_whatever_the_file_names(tmp_path):
    # a literal backslash and t, a tab, and a CR LF with a trailing backslash
    files = ["in/a\\tb.txt", "in/a\tb.txt", "in/c\r\n\\"]
    rows = [(path, line) for path in files for line in (1, 2)]
    formatter = RowFormatter("tsv", keys=["label"])
    shards = []
    for k, part in enumerate((rows[1::2][::-1], rows[0::2][::-1])):
        shard = tmp_path / f"out-0000{k}-of-00002.tsv"
        lines = [formatter.format(path, line, None, {"label": "pos"}, None) for path, line in part]
        shard.write_text(formatter.header() + "".join(lines), encoding="utf-8")
        shards.append(str(shard))
    merged = merge_shards(shards, str(tmp_path / "out.tsv"), files, "tsv")
    assert _tsv_file_cells(merged) == rows


def test_run_beam_merges_tsv_shards_of_files_named_with_backslashes_and_cr(tmp_path, model_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a\\b\r.txt", "b.txt"):
        (folder / name).write_text("好\n差\n很好看\n", encoding="utf-8")
    local, merged = str(tmp_path / "local.tsv"), str(tmp_path / "beam.tsv")
    predict_files(model_dir, str(folder), local, workers=0)
    run_beam(model_dir, str(folder), merged, num_shards=2, merge=True)
    assert _tsv_file_cells(merged) == _tsv_file_cells(local)
    assert [path for path, _ in _tsv_file_cells(local)] == [str(folder / "a\\b\r.txt")] * 3 + [str(folder / "b.txt")] * 3


def test_run_beam_refuses_existing_shards(tmp_path, model_dir, corpus):
    out = str(tmp_path / "out.jsonl")
    (tmp_path / "out-00000-of-00001.jsonl").write_text("old\n")
    with pytest.raises(BatchError, match="already exist"):
        run_beam(model_dir, corpus, out)


def test_predict_command_runs_the_beam_runner(tmp_path, model_dir, corpus, capsys):
    import argparse

    from pipeline.batch import add_predict_arguments, predict_command

    parser = argparse.ArgumentParser()
    add_predict_arguments(parser)
    out = str(tmp_path / "cli.jsonl")
    args = parser.parse_args([model_dir, "-i", corpus, "-o", out, "--runner", "beam", "--shards", "2", "--merge",
                              "--beam-option", "direct_num_workers=1"])
    assert predict_command(args) == 1  # the corpus holds one undecodable line
    assert "362 rows, 1 errors" in capsys.readouterr().err
    assert len(_rows(out)) == 362
