"""Tests of pipeline.batch: streaming batch prediction, bad input, resume after a kill, CLI."""

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.batch import (
    BatchError,
    add_predict_arguments,
    escape_cell,
    manifest_path,
    predict_command,
    predict_files,
    resolve_inputs,
    unescape_cell,
)

POS = ["很好看", "非常喜欢", "服务很好", "质量不错", "推荐购买"]
NEG = ["太难看了", "非常讨厌", "服务很差", "质量很差", "不会再来"]
CHARS = "很好看太难喜欢讨厌非常差劲服务质量不错推荐购买会再来"


def _config(**vectorizer):
    vec = {"type": "embedding", "dim": 8, "max_length": 24, **vectorizer}
    return {
        "stages": {
            "tokenizer": {"type": "char"},
            "vocabulary": {},
            "vectorizer": vec,
            "model": {"type": "rnn_classifier", "cell": "lstm", "units": 4},
            "decoder": {"type": "label"},
        },
        "training": {"epochs": 1, "batch_size": 4, "verbose": 0, "plots": False, "checkpoint": False, "csv_log": False},
    }


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny saved char-level classifier (LSTM, 4 units, 1 epoch)."""
    from pipeline import Pipeline

    p = Pipeline.from_config(_config())
    p.fit(POS + NEG, ["pos"] * 5 + ["neg"] * 5)
    path = str(tmp_path_factory.mktemp("batch_model") / "model")
    p.save(path)
    return path


@pytest.fixture(scope="module")
def pipeline(model_dir):
    from pipeline import Pipeline

    return Pipeline.load(model_dir)


def _texts(n, seed=0, longest=40):
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(CHARS) for _ in range(rng.randint(0, longest))) for _ in range(n)]


def _write(path, lines, newline="\n"):
    with open(path, "w", encoding="utf-8") as f:
        f.write(newline.join(lines) + newline)
    return str(path)


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# -- inputs -----------------------------------------------------------------------------------
def test_resolve_inputs_expands_folders_and_globs_in_order(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.txt", "d/a.txt", "d/sub/c.txt", "d/.hidden", "e1.txt", "e2.txt"):
        (tmp_path / name).write_text("x\n")
    files = resolve_inputs([str(tmp_path / "d"), str(tmp_path / "e*.txt"), str(tmp_path / "d" / "a.txt")])
    names = [os.path.relpath(f, tmp_path) for f in files]
    assert names == ["d/a.txt", "d/b.txt", "d/sub/c.txt", "e1.txt", "e2.txt"]


def test_resolve_inputs_rejects_a_pattern_matching_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no files"):
        resolve_inputs(str(tmp_path / "*.nothing"))


# -- the basic contract -------------------------------------------------------------------------
def test_predict_files_writes_one_row_per_input_row_in_order(tmp_path, pipeline, model_dir):
    texts = _texts(300)
    src = _write(tmp_path / "in.txt", texts)
    summary = predict_files(model_dir, src, str(tmp_path / "out.jsonl"), workers=0, chunk_size=64, batch_size=16)
    rows = _rows(tmp_path / "out.jsonl")
    expected = pipeline.predict(texts)
    assert [(r["file"], r["line"]) for r in rows] == [(src, i) for i in range(1, 301)]
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert max(abs(r["score"] - e["score"]) for r, e in zip(rows, expected)) < 1e-5
    assert summary["rows"] == 300 and summary["errors"] == 0 and summary["rows_per_second"] > 0


def test_predict_files_gives_the_same_rows_with_workers_and_without_bucketing(tmp_path, pipeline):
    src = _write(tmp_path / "in.txt", _texts(200, seed=3))
    predict_files(pipeline, src, str(tmp_path / "a.jsonl"), workers=0, chunk_size=50, batch_size=8)
    predict_files(pipeline, src, str(tmp_path / "b.jsonl"), workers=2, chunk_size=50, batch_size=8)
    predict_files(pipeline, src, str(tmp_path / "c.jsonl"), workers=0, chunk_size=50, batch_size=8, bucketing=False)
    a, b, c = (_rows(tmp_path / f"{x}.jsonl") for x in "abc")
    assert a == b
    assert [r["label"] for r in a] == [r["label"] for r in c]
    assert max(abs(r["score"] - s["score"]) for r, s in zip(a, c)) < 1e-5


def test_predict_files_predicts_empty_and_blank_texts_for_a_classifier(tmp_path, pipeline):
    src = _write(tmp_path / "in.txt", ["好", "", "   ", "差"])
    summary = predict_files(pipeline, src, str(tmp_path / "out.jsonl"), workers=0)
    rows = _rows(tmp_path / "out.jsonl")
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert all("label" in r and "error" not in r for r in rows)
    assert summary["errors"] == 0


def test_predict_files_reads_jsonl_tsv_csv_and_gzip(tmp_path, pipeline):
    _write(tmp_path / "a.jsonl", [json.dumps({"id": 1, "text": "很好看"}, ensure_ascii=False), "", json.dumps({"text": "太差"}, ensure_ascii=False)])
    _write(tmp_path / "b.tsv", ["id\ttext", "1\t喜欢", "2\t讨厌"])
    _write(tmp_path / "c.csv", ["text,id", '"好,看",1'])
    with gzip.open(tmp_path / "d.txt.gz", "wt", encoding="utf-8") as f:
        f.write("不错\n很差\n")
    summary = predict_files(pipeline, str(tmp_path / "*"), str(tmp_path / "out.jsonl"), workers=0, include_text=True)
    rows = _rows(tmp_path / "out.jsonl")
    assert [(os.path.basename(r["file"]), r["line"], r["text"]) for r in rows] == [
        ("a.jsonl", 1, "很好看"), ("a.jsonl", 3, "太差"), ("b.tsv", 2, "喜欢"), ("b.tsv", 3, "讨厌"),
        ("c.csv", 2, "好,看"), ("d.txt.gz", 1, "不错"), ("d.txt.gz", 2, "很差"),
    ]
    assert summary["blank_lines_skipped"] == 1 and summary["errors"] == 0


def test_predict_files_writes_tsv_with_a_header(tmp_path, pipeline):
    src = _write(tmp_path / "in.txt", ["好\t看", "差"])
    predict_files(pipeline, src, str(tmp_path / "out.tsv"), workers=0, include_text=True)
    lines = (tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["file", "line", "text", "label", "score", "error"]
    first = lines[1].split("\t")
    assert first[1:3] == ["1", "好\\t看"] and first[3] in ("pos", "neg") and first[-1] == ""
    assert len(lines) == 3


TRICKY_CELLS = [
    "",
    "plain 文本",
    "a\\tb",  # a literal backslash and t, not a tab
    "a\tb",
    "\r\n",
    "\r",
    "trailing backslash\\",
    "\\",
    "\\\\n",
    "\\\n\\\r\\\t",
    "C:\\new\\table\r\nnext",
]


@pytest.mark.parametrize("text", TRICKY_CELLS)
def test_tsv_cell_codec_round_trips_every_string_on_one_line(text):
    cell = escape_cell(text)
    assert not any(c in cell for c in "\t\n\r")
    assert unescape_cell(cell) == text


def test_tsv_escape_cell_writes_a_backslash_before_the_other_escapes():
    assert escape_cell("a\\tb\t\r\n") == "a\\\\tb\\t\\r\\n"


def test_tsv_unescape_cell_keeps_a_backslash_before_anything_else():
    assert unescape_cell("a\\x\\") == "a\\x\\"


def test_predict_files_tsv_file_cell_gives_back_a_path_with_backslash_tab_and_cr(tmp_path, pipeline):
    folder = tmp_path / "in"
    folder.mkdir()
    src = _write(folder / "back\\slash\tand\rcr.txt", ["好", "差"])
    predict_files(pipeline, str(folder), str(tmp_path / "out.tsv"), workers=0)
    with open(tmp_path / "out.tsv", encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    assert len(lines) == 4 and lines[-1] == ""  # header, two rows: no stray line break
    cells = [line.split("\t") for line in lines[1:3]]
    assert [(unescape_cell(c[0]), c[1]) for c in cells] == [(src, "1"), (src, "2")]


# -- bad input --------------------------------------------------------------------------------------
def test_predict_files_turns_bad_rows_into_error_rows(tmp_path, pipeline):
    (tmp_path / "bad.txt").write_bytes(b"\xe5\xa5\xbd\n\xff\xfe broken\n\xe5\xb7\xae\n")
    _write(tmp_path / "bad.jsonl", ['{"text": "好"}', "not json", '{"text": 3}'])
    summary = predict_files(pipeline, [str(tmp_path / "bad.txt"), str(tmp_path / "bad.jsonl")], str(tmp_path / "out.jsonl"), workers=0)
    rows = _rows(tmp_path / "out.jsonl")
    assert [("error" in r) for r in rows] == [False, True, False, False, True, True]
    assert "not valid utf-8" in rows[1]["error"] and "bad.txt:2" in rows[1]["error"]
    assert "not valid JSON" in rows[4]["error"]
    assert summary["rows"] == 6 and summary["errors"] == 3 and len(summary["error_examples"]) == 3


def test_predict_files_keeps_the_rows_before_a_gzip_file_is_cut_short(tmp_path, pipeline):
    data = gzip.compress("".join(f"{t}\n" for t in _texts(2000, seed=5)).encode("utf-8"))
    (tmp_path / "cut.txt.gz").write_bytes(data[: len(data) // 2])
    summary = predict_files(pipeline, str(tmp_path / "cut.txt.gz"), str(tmp_path / "out.jsonl"), workers=0)
    rows = _rows(tmp_path / "out.jsonl")
    assert len(rows) > 100 and all("error" not in r for r in rows[:-1])
    assert "truncated" in rows[-1]["error"] and rows[-1]["line"] == len(rows)
    assert summary["files_cut_short"] == 1 and summary["errors"] == 1


def test_predict_files_reports_an_unreadable_file_in_a_folder(tmp_path, pipeline):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write(folder / "a.txt", ["好"])
    os.symlink(folder / "missing.txt", folder / "b.txt")  # unreadable even for root
    _write(folder / "c.txt", ["差"])
    summary = predict_files(pipeline, str(folder), str(tmp_path / "out.jsonl"), workers=0)
    rows = _rows(tmp_path / "out.jsonl")
    assert [os.path.basename(r["file"]) for r in rows] == ["a.txt", "b.txt", "c.txt"]
    assert "cannot read the file" in rows[1]["error"] and rows[1]["line"] == 0
    assert summary["file_errors"] == 1 and summary["errors"] == 1


def test_predict_files_handles_a_one_megabyte_line(tmp_path, pipeline):
    src = _write(tmp_path / "in.txt", ["好", "很好看" * 350_000, "差"])
    summary = predict_files(pipeline, src, str(tmp_path / "out.jsonl"), workers=0)
    rows = _rows(tmp_path / "out.jsonl")
    assert len(rows) == 3 and all("label" in r for r in rows) and summary["errors"] == 0


# -- output protection and resume --------------------------------------------------------------------
def test_predict_files_refuses_an_existing_output(tmp_path, pipeline):
    src = _write(tmp_path / "in.txt", ["好"])
    (tmp_path / "out.jsonl").write_text("keep me\n")
    with pytest.raises(BatchError, match="already exists.*--overwrite"):
        predict_files(pipeline, src, str(tmp_path / "out.jsonl"), workers=0)
    assert (tmp_path / "out.jsonl").read_text() == "keep me\n"
    predict_files(pipeline, src, str(tmp_path / "out.jsonl"), workers=0, overwrite=True)
    assert len(_rows(tmp_path / "out.jsonl")) == 1


def test_predict_files_resume_refuses_a_complete_output(tmp_path, pipeline):
    src = _write(tmp_path / "in.txt", ["好"])
    predict_files(pipeline, src, str(tmp_path / "out.jsonl"), workers=0)
    with pytest.raises(BatchError, match="no progress manifest"):
        predict_files(pipeline, src, str(tmp_path / "out.jsonl"), workers=0, resume=True)


def test_predict_files_resume_refuses_changed_settings(tmp_path, pipeline, monkeypatch):
    src = _write(tmp_path / "in.txt", _texts(20))
    out = str(tmp_path / "out.jsonl")
    # An interrupted run: stopped (Ctrl-C) while the second chunk is predicted, with a torn
    # line after the first chunk's rows as a crash mid-write leaves.
    decoder, calls = pipeline.stage("decoder"), []
    real_decode = decoder.decode

    def decode(scores):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_decode(scores)

    monkeypatch.setattr(decoder, "decode", decode)
    with pytest.raises(KeyboardInterrupt):
        predict_files(pipeline, src, out, workers=0, chunk_size=5)
    monkeypatch.undo()
    with open(manifest_path(out)) as f:
        assert json.load(f)["rows_done"] == 5
    with open(out, "ab") as f:
        f.write(b'{"partial')
    with pytest.raises(BatchError, match="settings differ.*chunk_size"):
        predict_files(pipeline, src, out, workers=0, chunk_size=6, resume=True)
    summary = predict_files(pipeline, src, out, workers=0, chunk_size=5, resume=True)
    assert summary["resumed_rows"] == 5 and summary["rows"] == 20
    assert [r["line"] for r in _rows(out)] == list(range(1, 21))
    assert not os.path.exists(manifest_path(out))


def _processes_mentioning(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGKILL")
def test_predict_files_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, model_dir):
    src = _write(tmp_path / "in.txt", _texts(20_000, seed=7, longest=24))
    killed = str(tmp_path / "killed.jsonl")
    manifest = manifest_path(killed)
    cmd = [sys.executable, "-m", "pipeline.batch", model_dir, "--input", src, "--output", killed,
           "--chunk-size", "250", "--workers", "1", "--quiet"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            with open(manifest, encoding="utf-8") as f:
                done = json.load(f)["chunks_done"]
        except (OSError, ValueError, KeyError):
            done = 0
        if done >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    with open(manifest, encoding="utf-8") as f:
        state = json.load(f)
    assert 3 <= state["chunks_done"] < 80, "the kill came after the run had finished"
    assert state["bytes_done"] <= os.path.getsize(killed)
    time.sleep(0.5)
    assert _processes_mentioning(killed) == [], "tokenizer workers outlived their killed parent"

    summary = predict_files(model_dir, src, killed, chunk_size=250, workers=1, resume=True)
    assert summary["resumed_rows"] == 250 * state["chunks_done"] and summary["rows"] == 20_000
    fresh = str(tmp_path / "fresh.jsonl")
    predict_files(model_dir, src, fresh, chunk_size=250, workers=1)
    with open(killed, "rb") as a, open(fresh, "rb") as b:
        assert a.read() == b.read()
    assert not os.path.exists(manifest)


class _DieOn:
    """An encoder whose worker process (never the test's own) dies on the text "die"."""

    def __init__(self):
        self.parent = os.getpid()

    def __call__(self, texts):
        if "die" in texts and os.getpid() != self.parent:
            os._exit(3)
        return [list(t) for t in texts]


def test_encoder_fails_with_advice_when_a_worker_dies():
    import concurrent.futures

    from pipeline.batch import _Encoder

    encoder = _Encoder(_DieOn(), workers=1)
    try:
        assert encoder.collect(encoder.submit(["ab"])) == ([["a", "b"]], {})
        handle = encoder.submit(["die"])
        concurrent.futures.wait(handle.futures)  # let the worker take it (and die)
        with pytest.raises(BatchError, match="worker process died.*--resume"):
            encoder.collect(handle)
    finally:
        encoder.terminate()


def test_encoder_lets_this_process_help_with_pieces_no_worker_started():
    from pipeline.batch import _Encoder

    encoder = _Encoder(_DieOn(), workers=1)
    try:
        texts = [f"t{i}" for i in range(40)]
        handles = [encoder.submit(texts) for _ in range(3)]
        for handle in handles:
            assert encoder.collect(handle) == ([list(t) for t in texts], {})
    finally:
        encoder.close()


# -- command line ------------------------------------------------------------------------------------
def _parse(argv):
    parser = argparse.ArgumentParser()
    add_predict_arguments(parser)
    return parser.parse_args(argv)


def test_predict_command_exit_codes(tmp_path, model_dir, capsys):
    good = _write(tmp_path / "good.txt", ["好", "差"])
    (tmp_path / "bad.txt").write_bytes(b"\xff\n")
    out = str(tmp_path / "out.jsonl")
    assert predict_command(_parse([model_dir, "-i", good, "-o", out, "--workers", "0"])) == 0
    assert "2 rows, 0 errors" in capsys.readouterr().err
    assert predict_command(_parse([model_dir, "-i", good, "-o", out, "--workers", "0"])) == 2
    assert "already exists" in capsys.readouterr().err
    args = [model_dir, "-i", good, str(tmp_path / "bad.txt"), "-o", out, "--workers", "0", "--overwrite"]
    assert predict_command(_parse(args)) == 1
    assert predict_command(_parse(args + ["--allow-errors", "--summary-json", str(tmp_path / "s.json")])) == 0
    assert json.loads((tmp_path / "s.json").read_text())["errors"] == 1


def test_add_predict_arguments_keeps_an_existing_model_dir_argument():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    add_predict_arguments(parser)
    args = parser.parse_args(["m", "--input", "a", "b", "-i", "c", "-o", "o.jsonl", "--beam-option", "x=1"])
    assert args.inputs == ["a", "b", "c"] and args.beam_option == ["x=1"] and args.runner == "local"


# -- other task families ---------------------------------------------------------------------------
def test_predict_files_reads_conll_sentences_for_a_tagger(tmp_path):
    from pipeline import TASKS, Pipeline

    if "tagging" not in TASKS:
        pytest.skip("the tagging family is not available")
    p = Pipeline.from_config({
        "task": "tagging",
        "stages": {
            "tokenizer": {"type": "whitespace"},
            "vocabulary": {},
            "vectorizer": {"type": "embedding", "dim": 8, "max_length": 16},
            "model": {"type": "rnn_tagger", "cell": "lstm", "units": 4, "output": "softmax"},
            "decoder": {"type": "tags"},
        },
        "data": {"format": "conll", "scheme": "bio"},
        "training": {"epochs": 1, "verbose": 0, "plots": False, "checkpoint": False, "csv_log": False},
    })
    p.fit([["Li", "Wei", "went", "home"], ["Ann", "met", "Bo"]], [["B-PER", "I-PER", "O", "O"], ["B-PER", "O", "B-PER"]])
    (tmp_path / "in.conll").write_text("Li\nWei\nwent\n\nAnn\nmet\nBo\n", encoding="utf-8")
    _write(tmp_path / "in.txt", ["Li Wei went home", ""])
    summary = predict_files(p, [str(tmp_path / "in.conll"), str(tmp_path / "in.txt")], str(tmp_path / "out.jsonl"), workers=1)
    rows = _rows(tmp_path / "out.jsonl")
    assert [(os.path.basename(r["file"]), r["line"]) for r in rows] == [("in.conll", 1), ("in.conll", 5), ("in.txt", 1), ("in.txt", 2)]
    assert rows[0]["tokens"] == ["Li", "Wei", "went"] and len(rows[0]["tags"]) == 3
    assert rows[2]["tokens"] == ["Li", "Wei", "went", "home"] and summary["errors"] == 0


def test_iter_rows_reports_conll_files_without_a_tagging_pipeline(tmp_path):
    from pipeline.batch import iter_rows

    (tmp_path / "a.conll").write_text("Li B-PER\n", encoding="utf-8")
    rows = list(iter_rows([str(tmp_path / "a.conll")], {"format": "auto"}))
    assert len(rows) == 1 and "CoNLL input needs a sequence-tagging pipeline" in rows[0][3]


def test_predict_files_leaves_its_own_output_out_of_an_input_folder(tmp_path, pipeline):
    _write(tmp_path / "a.txt", ["好", "差"])
    out = str(tmp_path / "out.txt")
    predict_files(pipeline, str(tmp_path), out, workers=0)
    assert [os.path.basename(r["file"]) for r in _rows(out)] == ["a.txt", "a.txt"]


# -- reliability: line endings, CSV quotes, locks and write errors -----------------------------------
def test_predict_files_reads_cr_only_csv_with_an_unbalanced_quote_row_by_row(tmp_path, pipeline):
    rows = ["label,text", 'neg,the 5" screen', "pos,好看", 'neg,"太差', "pos,不错", "neg,很差"]
    (tmp_path / "in.csv").write_bytes("\r".join(rows).encode("utf-8") + b"\r")
    summary = predict_files(pipeline, str(tmp_path / "in.csv"), str(tmp_path / "out.jsonl"), workers=0, format="csv")
    out = _rows(tmp_path / "out.jsonl")
    assert [r["line"] for r in out] == [2, 3, 4, 5, 6] and ["error" in r for r in out] == [False, False, True, False, False]
    assert summary["rows"] == 5 and summary["errors"] == 1


def test_predict_files_counts_blank_csv_lines_but_not_blank_lines_inside_quotes(tmp_path, pipeline):
    (tmp_path / "in.csv").write_text('text\n"好\n\n看"\n\n差\n', encoding="utf-8")
    summary = predict_files(pipeline, str(tmp_path / "in.csv"), str(tmp_path / "out.jsonl"), workers=0)
    assert [r["line"] for r in _rows(tmp_path / "out.jsonl")] == [2, 6]
    assert summary["blank_lines_skipped"] == 1 and summary["errors"] == 0


def test_predict_files_refuses_an_unknown_encoding(tmp_path, pipeline):
    src = _write(tmp_path / "in.txt", ["好"])
    with pytest.raises(BatchError, match="encoding 'klingon' is not a text encoding"):
        predict_files(pipeline, src, str(tmp_path / "out.jsonl"), workers=0, encoding="klingon")


def test_predict_files_second_writer_fails_fast_and_leaves_the_first_output_alone(tmp_path, model_dir):
    src = _write(tmp_path / "in.txt", _texts(200))
    out = str(tmp_path / "out.jsonl")
    # Another process that holds the lock as a run does (flock on OUTPUT.lock, its pid inside).
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1] + '.lock', os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d\\n' % os.getpid()); "
            "open(sys.argv[1], 'w').write('first run\\n'); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, out], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BatchError, match=rf"being written by another run \(process {holder.pid}\)"):
            predict_files(model_dir, src, out, workers=0, overwrite=True)
        assert (tmp_path / "out.jsonl").read_text() == "first run\n"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    predict_files(model_dir, src, out, workers=0, overwrite=True)  # the kernel dropped the dead run's lock
    assert len(_rows(out)) == 200


def test_predict_command_prints_a_full_disk_as_one_line(tmp_path, model_dir, capsys, monkeypatch):
    import builtins
    import errno

    src = _write(tmp_path / "in.txt", ["好", "差"])
    out = str(tmp_path / "out.jsonl")
    real_open = builtins.open

    def opener(file, mode="r", *a, **k):
        if file == out and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", file)
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", opener)
    assert predict_command(_parse([model_dir, "-i", src, "-o", out, "--workers", "0"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ktp predict: error: Cannot write") and "No space left on device" in err[0]
