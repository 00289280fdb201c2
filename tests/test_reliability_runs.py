"""Reliability of runs: batch runs lock their output and resume from any point, every bad config
or data file is a one-line ``ktp: error:`` with an exit code, and the NLTK offsets are linear.

The rows and saved-folder checks are in ``test_reliability.py``; ``benchmarks/fuzz.py`` runs
these checks over many generated variants too, with the generators defined here
(``bad_configs``, ``bad_data_files``).
"""

import builtins
import gzip
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from pipeline import Pipeline
from pipeline.batch import BatchError, OutputLock, manifest_path, predict_files
from pipeline.errors import DataError
from tests.conftest import ZH_NEG, ZH_POS, tiny_config
from tests.test_reliability import ALIAS_BOMB

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# Batch output: the lock, and a run killed at any point resumes to the same bytes.
# ---------------------------------------------------------------------------------------------
def _inputs(folder, n=40):
    path = os.path.join(folder, "in.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{(ZH_POS + ZH_NEG)[i % 12]}{i}\n" for i in range(n)))
    return path


def test_predict_files_refuses_a_second_writer_while_the_lock_is_held(saved_zh, tmp_path):
    src, out = _inputs(str(tmp_path)), str(tmp_path / "out.jsonl")
    with OutputLock(out):
        with pytest.raises(BatchError, match=r"being written by another run \(process \d+\), which holds .*out\.jsonl\.lock"):
            predict_files(saved_zh, src, out, workers=0, overwrite=True)
    assert not os.path.exists(out)
    predict_files(saved_zh, src, out, workers=0)  # released: the next run goes ahead
    assert not os.path.exists(out + ".lock")


def test_predict_files_takes_over_the_lock_of_a_killed_run(saved_zh, tmp_path):
    src, out = _inputs(str(tmp_path)), str(tmp_path / "out.jsonl")
    code = f"import os, fcntl; fd = os.open({out + '.lock'!r}, os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code], check=False)
    assert os.path.exists(out + ".lock")  # left behind by the killed process, but not locked
    summary = predict_files(saved_zh, src, out, workers=0)
    assert summary["rows"] == 40


class _Killed(BaseException):
    """Stands for SIGKILL: nothing is cleaned up after it (it is not an Exception)."""


def _kill_at(monkeypatch, point):
    """Make the run stop dead at ``point``: after the first manifest (before the output
    exists), right after the output is created, after a chunk is written but before the
    manifest records it, or after the last chunk but before the manifest is removed."""
    from pipeline import batch

    real_write_json, real_open, real_remove = batch._write_json_atomic, builtins.open, os.remove
    calls = {"manifest": 0, "chunk": 0}

    def write_json(path, data):
        calls["manifest"] += 1
        if point == "chunk_unrecorded" and data["chunks_done"] == 1:
            raise _Killed
        real_write_json(path, data)
        if point == "manifest_only" and calls["manifest"] == 1:
            raise _Killed

    def opener(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        if point == "output_created" and isinstance(file, str) and file.endswith("out.jsonl") and "w" in mode:
            f.close()
            raise _Killed
        return f

    def remove(path, *a, **k):
        if point == "before_manifest_removed" and str(path).endswith(batch.MANIFEST_SUFFIX):
            raise _Killed
        return real_remove(path, *a, **k)

    monkeypatch.setattr(batch, "_write_json_atomic", write_json)
    monkeypatch.setattr(builtins, "open", opener)
    monkeypatch.setattr(batch.os, "remove", remove)


@pytest.mark.parametrize("point", ["manifest_only", "output_created", "chunk_unrecorded", "before_manifest_removed"])
def test_predict_files_killed_at_any_point_resumes_to_the_same_bytes(saved_zh, tmp_path, monkeypatch, point):
    src = _inputs(str(tmp_path))
    fresh = str(tmp_path / "fresh.jsonl")
    predict_files(saved_zh, src, fresh, workers=0, chunk_size=8)
    out = str(tmp_path / "out.jsonl")
    with monkeypatch.context() as m:
        _kill_at(m, point)
        with pytest.raises(_Killed):
            predict_files(saved_zh, src, out, workers=0, chunk_size=8)
    assert os.path.exists(manifest_path(out))
    predict_files(saved_zh, src, out, workers=0, chunk_size=8, resume=True)
    with open(out, "rb") as a, open(fresh, "rb") as b:
        assert a.read() == b.read()
    assert not os.path.exists(manifest_path(out)) and not os.path.exists(out + ".lock")


def test_predict_files_full_disk_is_a_batch_error_and_the_run_resumes(saved_zh, tmp_path, monkeypatch):
    import errno

    src = _inputs(str(tmp_path))
    fresh, out = str(tmp_path / "fresh.jsonl"), str(tmp_path / "out.jsonl")
    predict_files(saved_zh, src, fresh, workers=0, chunk_size=8)
    real_open = builtins.open
    writes = {"n": 0}

    def opener(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        if isinstance(file, str) and file == out and "b" in mode and ("w" in mode or "+" in mode):
            raw_write = f.write

            def write(data):
                writes["n"] += 1
                if writes["n"] == 3:  # the header, a chunk, then the disk is full
                    raise OSError(errno.ENOSPC, "No space left on device")
                return raw_write(data)

            return _Wrapped(f, write)
        return f

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", opener)
        with pytest.raises(BatchError, match="Cannot write .*out.jsonl: No space left on device.*--resume"):
            predict_files(saved_zh, src, out, workers=0, chunk_size=8)
    predict_files(saved_zh, src, out, workers=0, chunk_size=8, resume=True)
    with open(out, "rb") as a, open(fresh, "rb") as b:
        assert a.read() == b.read()


class _Wrapped:
    """A file object whose ``write`` is replaced."""

    def __init__(self, f, write):
        self._f, self.write = f, write

    def __getattr__(self, name):
        return getattr(self._f, name)


# ---------------------------------------------------------------------------------------------
# Bad configs and bad data files: each is a one-line ``ktp: error:`` with exit code 2.
# ---------------------------------------------------------------------------------------------
def bad_configs(folder):
    """``(name, path)`` of bad config files written into ``folder``: syntax, encodings, shapes,
    limits, names and values of every section."""
    base = tiny_config()

    def dump(config):
        return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)

    def with_(section, stage, key, value):
        config = json.loads(json.dumps(base))
        (config[section][stage] if stage else config[section])[key] = value
        return dump(config)

    cases = {
        "syntax": "stages:\n  tokenizer: {type: char\n",
        "tab_indent": "stages:\n\ttokenizer: {}\n",
        "python_tag": "stages: !!python/object/apply:os.system ['echo hacked']\n",
        "duplicate_key": "stages:\n  tokenizer: {type: char}\n  tokenizer: {type: jieba}\n",
        "duplicate_option": "stages:\n  model: {type: rnn_classifier, units: 4, units: 8}\n",
        "alias_bomb": ALIAS_BOMB,
        "self_alias": "stages: &a [*a]\n",
        "deep_nesting": "stages: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep_nesting_100": "stages: " + "{a: " * 100 + "1" + "}" * 100 + "\n",
        "list": "- a\n- b\n",
        "scalar": "42\n",
        "empty": "",
        "null": "null\n",
        "stages_list": "stages: [char]\n",
        "stages_empty": "stages: {}\n",
        "unknown_top": dump({**base, "trainig": {}}),
        "unknown_task": dump({**base, "task": "ranking"}),
        "unknown_type": with_("stages", "tokenizer", "type", "spacy"),
        "stage_options_list": dump({**base, "stages": {**base["stages"], "vocabulary": [1]}}),
        "stage_name_dotdot": dump({**base, "stages": {("../../x" if k == "decoder" else k): v for k, v in base["stages"].items()}}),
        "stage_name_absolute": dump({**base, "stages": {("/tmp/x" if k == "decoder" else k): v for k, v in base["stages"].items()}}),
        "stage_name_number": dump({**base, "stages": {(7 if k == "decoder" else k): v for k, v in base["stages"].items()}}),
        "missing_decoder": dump({**base, "stages": {k: v for k, v in base["stages"].items() if k != "decoder"}}),
        "units_huge": with_("stages", "model", "units", 1_000_000_000),
        "units_1e9_string": "stages:\n" + dump(base).split("stages:\n", 1)[1].replace("units: 4", "units: 1e9"),
        "units_zero": with_("stages", "model", "units", 0),
        "units_bool": with_("stages", "model", "units", True),
        "units_float": with_("stages", "model", "units", 4.5),
        "units_list": with_("stages", "model", "units", [4]),
        "layers_huge": with_("stages", "model", "layers", 10_000),
        "dense_units_huge": with_("stages", "model", "dense_units", [10**9]),
        "ensemble_huge": with_("stages", "model", "ensemble", 10**6),
        "dim_huge": dump({**base, "stages": {**base["stages"], "vectorizer": {"type": "embedding", "dim": 10**9}}}),
        "max_length_huge": with_("stages", "vectorizer", "max_length", 10**12),
        "max_size_huge": with_("stages", "vocabulary", "max_size", 10**12),
        "max_size_negative": with_("stages", "vocabulary", "max_size", -3),
        "min_freq_zero": with_("stages", "vocabulary", "min_freq", 0),
        "reserved_pad": with_("stages", "vocabulary", "reserved", ["<pad>"]),
        "reserved_newline": with_("stages", "vocabulary", "reserved", ["a\nb"]),
        "dropout_one": with_("stages", "model", "dropout", 1.0),
        "dropout_nan": "stages:\n" + dump(base).split("stages:\n", 1)[1].replace("dropout: 0.0", "dropout: .nan"),
        "learning_rate_inf": with_("stages", "model", "learning_rate", float("inf")),
        "cell_unknown": with_("stages", "model", "cell", "transformer"),
        "pooling_unknown": with_("stages", "model", "pooling", "sum"),
        "optimizer_unknown": with_("stages", "model", "optimizer", "lion"),
        "initializer_unknown": with_("stages", "model", "recurrent_initializer", "magic"),
        "top_k_zero": with_("stages", "decoder", "top_k", 0),
        "threshold_big": with_("stages", "decoder", "threshold", 2.0),
        "epochs_zero": with_("training", None, "epochs", 0),
        "batch_size_huge": with_("training", None, "batch_size", 10**9),
        "seed_negative": with_("training", None, "seed", -1),
        "verbose_bad": with_("training", None, "verbose", 7),
        "monitor_bad": with_("training", None, "monitor", "f1"),
        "training_list": dump({**base, "training": [1]}),
        "data_format_bad": dump({**base, "data": {"format": "xml"}}),
        "data_encoding_empty": dump({**base, "data": {"encoding": ""}}),
        "data_encoding_unknown": dump({**base, "data": {"encoding": "klingon"}}),
        "data_column_negative": dump({**base, "data": {"text_column": -1}}),
        "data_unknown": dump({**base, "data": {"formt": "tsv"}}),
        "name_list": dump({**base, "name": [1]}),
        "huge_received_value": with_("stages", "model", "units", "x" * 100_000),
        "big_list_value": with_("stages", "model", "dense_units", list(range(20_000))),
    }
    out = []
    for name, text in cases.items():
        path = os.path.join(folder, f"{name}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        out.append((name, path))
    raw = {
        "utf16": "stages: {tokenizer: {type: char}}\n".encode("utf-16"),
        "utf16_no_bom": "stages: {tokenizer: {type: char}}\n".encode("utf-16-le"),
        "utf32": "stages: {}\n".encode("utf-32"),
        "latin1": "stages: {tokenizer: {type: caf\u00e9}}\n".encode("latin-1"),
        "binary": bytes(range(256)) * 4,
        "gzip": gzip.compress(dump(base).encode()),
    }
    for name, data in raw.items():
        path = os.path.join(folder, f"{name}.yaml")
        with open(path, "wb") as f:
            f.write(data)
        out.append((name, path))
    os.mkdir(os.path.join(folder, "folder.yaml"))
    out.append(("folder", os.path.join(folder, "folder.yaml")))
    out.append(("missing", os.path.join(folder, "missing.yaml")))
    loop = os.path.join(folder, "loop.yaml")
    os.symlink(loop, loop)
    out.append(("symlink_loop", loop))
    os.mkfifo(os.path.join(folder, "fifo.yaml"))
    out.append(("fifo", os.path.join(folder, "fifo.yaml")))
    return out


def bad_data_files(folder):
    """``(name, path, extra arguments, evaluate outcome)`` of bad training / evaluation files
    written into ``folder`` for the tiny classifier (TSV with ``text`` and ``label`` columns).
    The outcome of ``ktp evaluate`` is ``ok`` (the file is odd but readable: every row is
    read), ``error`` (exit code 2 with one error line) or ``any`` (depends on the user: a
    file without read permission is readable by root)."""
    good = "text\tlabel\n" + "".join(f"{t}\tpos\n" for t in ZH_POS) + "".join(f"{t}\tneg\n" for t in ZH_NEG)
    csv_good = "text,label\n" + "".join(f"{t},pos\n" for t in ZH_POS) + "".join(f"{t},neg\n" for t in ZH_NEG)
    cases = {
        "cr_only": (good.replace("\n", "\r").encode(), "ok"),
        "crlf": (good.replace("\n", "\r\n").encode(), "ok"),
        "bom": (("\ufeff" + good).encode(), "ok"),
        "blank_lines": (good.replace("\n", "\n\n").encode(), "ok"),
        "nul_bytes": (good.replace("好", "好\x00").encode(), "ok"),
        "zero_width_and_controls": (good.replace("好", "好\u200b\x1b[31m").encode(), "ok"),
        "long_line": (("text\tlabel\n" + "好" * 1_000_000 + "\tpos\n" + "".join(f"{t}\tneg\n" for t in ZH_NEG)).encode(), "ok"),
        "quote_in_tsv": (('text\tlabel\n"好\tpos\n' + good.split("\n", 1)[1]).encode(), "ok"),
        "one_label_only": (("text\tlabel\n" + "".join(f"{t}\tpos\n" for t in ZH_POS)).encode(), "ok"),
        "not_utf8": (good.encode("gbk"), "error"),
        "utf16": (good.encode("utf-16"), "error"),
        "binary": (bytes(range(256)) * 64, "error"),
        "empty": (b"", "error"),
        "header_only": (b"text\tlabel\n", "error"),
        "only_whitespace": (b"   \n\t\n  \n", "error"),
        "no_label_column": ("text\n好\n".encode(), "error"),
        "no_text_column": ("label\ttxt\npos\t好\n".encode(), "error"),
        "missing_label": ("text\tlabel\n好\t\n".encode(), "error"),
        "extra_column": ("text\tlabel\n好\tpos\textra\n".encode(), "error"),
        "surrogate_bytes": (good.encode().replace("好".encode(), b"\xed\xa0\x80", 1), "error"),
        "labels_unseen": (("text\tlabel\n" + "".join(f"{t}\tmaybe\n" for t in ZH_POS)).encode(), "error"),
        "csv_unbalanced_quote": (('text,label\n"好,pos\n' + csv_good.split("\n", 1)[1]).encode(), "error"),
        "fake_gz": (good.encode(), "error"),
        "truncated_gz": (gzip.compress(good.encode() + "".join(f"文本{i}\tpos\n" for i in range(3000)).encode())[:2000], "error"),
        "empty_gz": (b"", "error"),
        "gzip_of_binary": (gzip.compress(bytes(range(256)) * 64), "error"),
    }
    suffix = {"fake_gz": ".tsv.gz", "truncated_gz": ".tsv.gz", "empty_gz": ".tsv.gz", "gzip_of_binary": ".tsv.gz", "csv_unbalanced_quote": ".csv"}
    out = []
    for name, (data, outcome) in cases.items():
        path = os.path.join(folder, name + suffix.get(name, ".tsv"))
        with open(path, "wb") as f:
            f.write(data)
        out.append((name, path, ["--format", "csv"] if name.startswith("csv") else [], outcome))
    os.mkdir(os.path.join(folder, "a_folder.tsv"))
    out.append(("folder", os.path.join(folder, "a_folder.tsv"), [], "error"))
    out.append(("missing", os.path.join(folder, "missing.tsv"), [], "error"))
    loop = os.path.join(folder, "loop.tsv")
    os.symlink(loop, loop)
    out.append(("symlink_loop", loop, [], "error"))
    os.symlink(os.path.join(folder, "nowhere.tsv"), os.path.join(folder, "dangling.tsv"))
    out.append(("dangling_link", os.path.join(folder, "dangling.tsv"), [], "error"))
    os.mkfifo(os.path.join(folder, "fifo.tsv"))
    out.append(("fifo", os.path.join(folder, "fifo.tsv"), [], "error"))
    unreadable = os.path.join(folder, "unreadable.tsv")
    with open(unreadable, "w", encoding="utf-8") as f:
        f.write(good)
    os.chmod(unreadable, 0)
    out.append(("unreadable", unreadable, [], "any"))
    return out


def run_cli(argv, capsys):
    """``ktp ARGV`` in this process: ``(exit code, stderr)``; an exception escaping the CLI
    (what a user sees as a traceback) fails the test."""
    import logging

    from pipeline.cli import main

    capsys.readouterr()
    handlers, level = list(logging.root.handlers), logging.root.level
    try:
        code = main(argv)
    except SystemExit as err:  # argparse, or a command that exits with a message
        code = err.code
    finally:
        # main() sets up logging on the captured stderr; leave none behind for later tests.
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
    return code, capsys.readouterr().err


def _one_error_line(err):
    lines = [line for line in err.splitlines() if line.startswith("ktp: error:")]
    return len(lines) == 1 and "Traceback" not in err


def test_validate_turns_every_bad_config_into_one_error_line(tmp_path, capsys):
    configs = bad_configs(str(tmp_path))
    assert len(configs) >= 60
    failures = []
    for name, path in configs:
        code, err = run_cli(["validate", path, "--quiet"], capsys)
        line = next((x for x in err.splitlines() if x.startswith("ktp: error:")), "")
        if code != 2 or not _one_error_line(err) or len(line) > 1200:
            failures.append((name, code, err[-300:]))
    assert failures == []


def test_validate_names_the_limit_of_a_size_option(tmp_path, capsys):
    config = tiny_config(units=1_000_000_000)
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    code, err = run_cli(["validate", str(path)], capsys)
    assert code == 2 and "stages.model.units must be an integer >= 1 and <= 16384. Received: units=1000000000" in err


def test_train_and_evaluate_turn_every_bad_data_file_into_one_error_line(saved_zh, tmp_path, capsys):
    files = bad_data_files(str(tmp_path))
    assert len(files) >= 30
    config = tiny_config()
    config["training"].update(epochs=1, plots=False, checkpoint=False, csv_log=False)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    failures = []
    for name, path, extra, outcome in files:
        code, err = run_cli(["evaluate", saved_zh, "--data", path, *extra, "--quiet"], capsys)
        ok = code == 0 if outcome == "ok" else (code == 2 and _one_error_line(err)) if outcome == "error" else (
            code == 0 or (code == 2 and _one_error_line(err)))
        if not ok:
            failures.append(("evaluate", name, code, err[-300:]))
        if (outcome == "error" or name == "one_label_only") and not extra:
            # Training stops at reading (or at the label set), before any network is built.
            code, err = run_cli(["train", str(config_path), "--train", path, *extra, "--output", str(tmp_path / "run"), "--quiet"], capsys)
            if code != 2 or not _one_error_line(err):
                failures.append(("train", name, code, err[-300:]))
    assert failures == []


def test_train_on_a_cr_only_file_reads_every_row(tmp_path):
    good = "text\tlabel\n" + "".join(f"{t}\tpos\n" for t in ZH_POS) + "".join(f"{t}\tneg\n" for t in ZH_NEG)
    path = tmp_path / "cr.tsv"
    path.write_bytes(good.replace("\n", "\r").encode())
    corpus = Pipeline.from_config(tiny_config()).read(str(path))
    assert corpus.texts == ZH_POS + ZH_NEG


def test_save_on_a_full_disk_is_a_data_error_naming_the_file(saved_zh, tmp_path, monkeypatch):
    import errno

    p = Pipeline.load(saved_zh)
    real_open = builtins.open

    def opener(file, mode="r", *a, **k):
        if isinstance(file, str) and file.endswith("labels.txt") and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", file)
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", opener)
    with pytest.raises(DataError, match=r"Cannot save the pipeline to .*labels\.txt: No space left on device"):
        p.save(str(tmp_path / "copy"))


def test_cli_subprocess_error_is_one_line_without_traceback(saved_zh, tmp_path):
    """The real entry point (``python -m pipeline``) on a gzip file cut short."""
    data = tmp_path / "cut.tsv.gz"
    compressed = gzip.compress(("text\tlabel\n" + "".join(f"文本{i}\t{i % 2}\n" for i in range(5000))).encode())
    data.write_bytes(compressed[: len(compressed) // 2])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-m", "pipeline", "evaluate", saved_zh, "--data", str(data), "--quiet"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (line,) = [x for x in run.stderr.splitlines() if x.startswith("ktp: error:")]
    assert "cut.tsv.gz:" in line and "the compressed file is truncated" in line


# ---------------------------------------------------------------------------------------------
# Speed: the NLTK tokenizer's offsets are linear in the text length.
# ---------------------------------------------------------------------------------------------
def test_tokenize_with_offsets_nltk_is_linear_on_quote_heavy_text():
    from pipeline.tagging import tokenize_with_offsets
    from stages.tokenizers import NLTKTokenizer

    tokenizer = NLTKTokenizer()
    unit = 'He said "no" and `` she \'\' said \'yes\' "" ok. '
    tokenize_with_offsets(tokenizer, unit * 100)  # warm up

    def seconds(n):
        text = (unit * (n // len(unit) + 1))[:n]
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            tokens = tokenize_with_offsets(tokenizer, text)
            best = min(best, time.perf_counter() - t0)
        assert all(text[s:e] for s, e in tokens.spans)
        return best

    small, large = seconds(32_000), seconds(256_000)
    assert large < 3.0, f"256k characters took {large:.2f} s"
    assert large / max(small, 1e-3) < 24, f"32k: {small:.3f} s, 256k: {large:.3f} s (8x the text; quadratic would be 64x)"
