"""Reliability: every input row comes out (as a row or an error row) in every reader, a saved
folder loads without reading anything outside it, batch runs lock their output and resume from
any point, and every bad config or data file is a one-line ``ktp: error:`` with an exit code.

The inputs here are small and fixed; ``benchmarks/fuzz.py`` runs the same checks over many
generated variants and reports the figures quoted in docs/reliability.md. Its generators are
the ones defined here (``FAMILIES``, ``VARIANTS``, ``tampered_folders``, ``bad_configs``,
``bad_data_files``), so the two cannot drift apart.
"""

import builtins
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from pipeline import Pipeline
from pipeline.batch import BatchError, OutputLock, iter_rows, manifest_path, predict_files
from pipeline.conll import read_tagged
from pipeline.errors import ConfigError, DataError
from pipeline.parallel import read_parallel
from pipeline.readers import read_corpus
from tests.conftest import ZH_NEG, ZH_POS, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# File families: (header, records, separator, reader, options). A record may span lines (a
# CSV field with a line break, a CoNLL sentence); the readers must give exactly one row or
# error row per record, whatever the line endings and whatever is wrong with one record.
# ---------------------------------------------------------------------------------------------
N_RECORDS = 7


def _texts(n=N_RECORDS):
    return [f"{(ZH_POS + ZH_NEG)[i % 12]}{i}" for i in range(n)]


def _family_text(stray):
    return None, [t + ('"' if stray and i == 2 else "") for i, t in enumerate(_texts())], "\n"


def _family_tsv(stray):
    rows = [f"{t}\t{'pos' if i % 2 else 'neg'}" for i, t in enumerate(_texts())]
    if stray:
        rows[2] = '"the 5 screen is tiny\tneg'  # quotes mean nothing in TSV
    return "text\tlabel", rows, "\n"


def _family_csv(stray):
    texts = _texts()
    rows = [f"{t},{'pos' if i % 2 else 'neg'}" for i, t in enumerate(texts)]
    rows[1] = f'"{texts[1]}, with a comma",pos'
    rows[3] = f'"{texts[3]}\nover two lines",pos'  # one record, two lines
    rows[5] = f'"say ""{texts[5]}""",neg'
    if stray:
        rows[0] = 'the 5" screen is tiny,neg'  # a quote inside a field: a literal character
        rows[2] = '"the 5 screen is tiny,neg'  # a quote that opens a field and never closes
    return "text,label", rows, "\n"


def _family_jsonl(stray):
    rows = [json.dumps({"text": t, "label": "pos" if i % 2 else "neg"}, ensure_ascii=False) for i, t in enumerate(_texts())]
    if stray:
        rows[2] = '{"text": "the 5" screen", "label": "neg"}'
    return None, rows, "\n"


def _family_fasttext(stray):
    rows = [f"{'pos' if i % 2 else 'neg'} {t}" for i, t in enumerate(_texts())]
    if stray:
        rows[2] = 'neg the 5" screen is tiny'
    return None, rows, "\n"


def _sentence(i, stray):
    words = ["张伟", "在", "北京", "工作" + str(i)]
    tags = ["B-PER", "O", "B-LOC", "O"]
    if stray and i == 2:
        words[1] = '"'
    return words, tags


def _family_conll(stray):
    rows = []
    for i in range(N_RECORDS):
        words, tags = _sentence(i, stray)
        rows.append("\n".join(f"{w} {t}" for w, t in zip(words, tags)))
    return None, rows, "\n\n"


def _family_char(stray):
    rows = []
    for i in range(N_RECORDS):
        chars = list(f"张伟去北京{i}")
        tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
        if stray and i == 2:
            chars[2] = '"'
        rows.append("\n".join(f"{c} {t}" for c, t in zip(chars, tags)))
    return None, rows, "\n\n"


def _family_tag_jsonl(stray):
    rows = [json.dumps({"text": f"张伟去北京{i}", "entities": [[0, 2, "PER"], [3, 5, "LOC"]]}, ensure_ascii=False) for i in range(N_RECORDS)]
    if stray:
        rows[2] = '{"text": "张伟"去北京", "entities": []}'
    return None, rows, "\n"


def _family_parallel_tsv(stray):
    rows = [f"ein hund {i}\ta dog {i}" for i in range(N_RECORDS)]
    if stray:
        rows[2] = '"ein hund\ta dog'
    return "source\ttarget", rows, "\n"


def _family_parallel_csv(stray):
    rows = [f"ein hund {i},a dog {i}" for i in range(N_RECORDS)]
    rows[3] = '"ein hund,\nzwei",a dog'
    if stray:
        rows[2] = '"ein hund,a dog'
    return "source,target", rows, "\n"


#: family -> (builder, file suffix, reader kind, reader options)
FAMILIES = {
    "text": (_family_text, ".txt", "corpus", {"format": "text"}),
    "tsv": (_family_tsv, ".tsv", "corpus", {"format": "tsv"}),
    "csv": (_family_csv, ".csv", "corpus", {"format": "csv"}),
    "jsonl": (_family_jsonl, ".jsonl", "corpus", {"format": "jsonl"}),
    "fasttext": (_family_fasttext, ".txt", "corpus", {"format": "fasttext"}),
    "batch_text": (_family_text, ".txt", "batch", {"format": "text"}),
    "batch_tsv": (_family_tsv, ".tsv", "batch", {"format": "tsv"}),
    "batch_csv": (_family_csv, ".csv", "batch", {"format": "csv"}),
    "batch_jsonl": (_family_jsonl, ".jsonl", "batch", {"format": "jsonl"}),
    "conll": (_family_conll, ".conll", "tagged", {"format": "conll"}),
    "char": (_family_char, ".char", "tagged", {"format": "char"}),
    "tag_jsonl": (_family_tag_jsonl, ".jsonl", "tagged", {"format": "jsonl"}),
    "aligned": (_family_text, "", "aligned", {"format": "aligned"}),
    "parallel_tsv": (_family_parallel_tsv, ".tsv", "parallel", {"format": "tsv"}),
    "parallel_csv": (_family_parallel_csv, ".csv", "parallel", {"format": "csv"}),
}


def _mixed(text):
    # Never a lone \r right before \n: that pair is one CRLF break.
    out, breaks = [], ["\n", "\r", "\r\n"]
    for i, piece in enumerate(text.split("\n")):
        out.append(piece)
        out.append(breaks[i % 3])
    return "".join(out[:-1])


#: variant -> (text transform, bytes transform, gzip?)
VARIANTS = {
    "lf": (lambda t: t, lambda b: b, False),
    "crlf": (lambda t: t.replace("\n", "\r\n"), lambda b: b, False),
    "cr": (lambda t: t.replace("\n", "\r"), lambda b: b, False),
    "mixed": (_mixed, lambda b: b, False),
    "bom": (lambda t: "\ufeff" + t, lambda b: b, False),
    "no_final_newline": (lambda t: t.rstrip("\n"), lambda b: b, False),
    "bad_bytes": (lambda t: t, lambda b: b.replace("北京".encode(), b"\xff\xfe", 1) if "北京".encode() in b else b.replace("0".encode(), b"\xff", 1), False),
    "nul": (lambda t: t.replace("0", "0\x00", 1), lambda b: b, False),
    "stray_quote": (lambda t: t, lambda b: b, False),
    "gzip": (lambda t: t, lambda b: b, True),
    "gzip_cr": (lambda t: t.replace("\n", "\r"), lambda b: b, True),
}


def write_family(folder, family, variant):
    """Write one file (two for ``aligned``) of ``family`` in ``variant``; returns
    ``(path, reader kind, options, records)``."""
    build, suffix, kind, options = FAMILIES[family]
    text_fn, bytes_fn, zipped = VARIANTS[variant]
    header, records, sep = build(variant == "stray_quote")
    name = f"{family}-{variant}{suffix}" + (".gz" if zipped else "")
    body = ((header + "\n") if header else "") + sep.join(records) + "\n"

    def emit(path, text):
        data = bytes_fn(text_fn(text).encode("utf-8"))
        with open(path, "wb") as f:
            f.write(gzip.compress(data) if zipped else data)

    options = {**options, "on_error": "skip"}
    if kind == "aligned":
        prefix = os.path.join(folder, f"{family}-{variant}")
        gz = ".gz" if zipped else ""
        emit(f"{prefix}.de{gz}", body)
        emit(f"{prefix}.en{gz}", "\n".join(f"{r} en" for r in records) + "\n")
        options.update(source_lang="de" + gz, target_lang="en" + gz, on_empty="skip")
        return prefix, kind, options, len(records)
    path = os.path.join(folder, name)
    emit(path, body)
    if kind == "parallel":
        options["on_empty"] = "skip"
    return path, kind, options, len(records)


def rows_out(path, kind, options):
    """Rows plus error rows a reader gives for ``path``."""
    if kind == "corpus":
        c = read_corpus(path, options, need_labels=options["format"] != "text")
        return len(c.texts) + len(c.skipped)
    if kind == "batch":
        return len(list(iter_rows([path], options)))
    if kind == "tagged":
        c = read_tagged(path, {**options, "scheme": "bio"})
        return len(c.texts) + len(c.skipped)
    c = read_parallel(path, options)
    return len(c.texts) + len(c.skipped)


ROW_CASES = [(f, v) for f in FAMILIES for v in VARIANTS if not (v == "stray_quote" and f in ("text", "batch_text", "aligned"))]


@pytest.mark.parametrize("family,variant", ROW_CASES, ids=[f"{f}-{v}" for f, v in ROW_CASES])
def test_reader_gives_one_row_or_error_row_per_record(tmp_path, family, variant):
    path, kind, options, expected = write_family(str(tmp_path), family, variant)
    assert rows_out(path, kind, options) == expected


@pytest.mark.parametrize("family", ["batch_text", "batch_tsv", "batch_csv", "batch_jsonl"])
def test_reader_line_numbers_do_not_depend_on_line_endings(tmp_path, family):
    seen = {}
    for variant in ("lf", "crlf", "cr", "mixed"):
        path, _, options, _ = write_family(str(tmp_path), family, variant)
        seen[variant] = [(line, text, error is None) for _, line, text, error in iter_rows([path], options)]
    assert seen["crlf"] == seen["lf"] and seen["cr"] == seen["lf"] and seen["mixed"] == seen["lf"]


def test_reader_csv_unbalanced_quote_is_one_error_row_and_later_rows_survive(tmp_path):
    # The file: 7 rows, one with a quote that opens a field and never closes.
    lines = ["label,text", "neg,the 5\" screen is tiny", "pos,great", 'neg,"awful', "pos,fine", "neg,bad", "pos,good", "neg,meh"]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = list(iter_rows([str(path)], {"format": "csv"}))
    assert len(rows) == 7
    assert [r[2] for r in rows] == ['the 5" screen is tiny', "great", None, "fine", "bad", "good", "meh"]
    assert "a quoted field starts on this line but is not closed" in rows[2][3] and rows[2][1] == 4


@pytest.mark.parametrize("fmt", ["text", "tsv", "csv", "jsonl"])
def test_reader_truncated_gzip_keeps_every_complete_row_then_one_error(tmp_path, fmt):
    header = {"text": "", "tsv": "text\tlabel\n", "csv": "text,label\n", "jsonl": ""}[fmt]
    texts = [f"文本{i}" for i in range(3000)]
    row = {"text": "{}", "tsv": "{}\tpos", "csv": "{},pos", "jsonl": '{{"text": "{}"}}'}[fmt]
    data = gzip.compress((header + "".join(row.format(t) + "\n" for t in texts)).encode("utf-8"))
    path = tmp_path / f"cut.{fmt}.gz"
    path.write_bytes(data[: len(data) // 2])
    rows = list(iter_rows([str(path)], {"format": fmt}))
    assert [r[2] for r in rows[:-1]] == texts[: len(rows) - 1] and len(rows) > 100
    assert "truncated" in rows[-1][3]


# ---------------------------------------------------------------------------------------------
# Saved folders: stage names, links, special files and assets that do not fit the model.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(fitted_zh, tmp_path_factory):
    """conftest's tiny char-level classifier, saved (shared, never modified: tests copy it)."""
    path = str(tmp_path_factory.mktemp("reliability") / "model")
    fitted_zh.save(path)
    return path


def _edit_yaml(folder, fn):
    path = os.path.join(folder, "pipeline.yaml")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    fn(config)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)


def _rename_stage(config, old, new):
    config["stages"] = {(new if k == old else k): v for k, v in config["stages"].items()}


def _lambda_model(path):
    import keras

    inp = keras.Input(shape=(None,), dtype="int32")
    out = keras.layers.Lambda(lambda x: x * 2)(keras.layers.Embedding(50, 2)(inp))
    keras.Model(inp, out).save(path)


def _secret_file():
    """A file outside every saved folder that a tampered folder points at."""
    return "/etc/passwd" if os.path.isfile("/etc/passwd") else os.path.abspath(__file__)


def tampered_folders(base, outside):
    """``(name, edit(folder), expected error types)`` for a copy of a saved folder ``base``;
    ``outside`` is a folder outside it that holds a copy of the stage folders (the target of
    links and of ``../`` stage names)."""
    secret = _secret_file()
    labels = lambda f: os.path.join(f, "decoder", "labels.txt")  # noqa: E731
    vocab = lambda f: os.path.join(f, "vocabulary", "vocab.txt")  # noqa: E731
    model = lambda f: os.path.join(f, "model", "model.keras")  # noqa: E731

    def replace_with_link(path, target):
        os.remove(path)
        os.symlink(target, path)

    def write(path, text, mode="w"):
        with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            f.write(text)

    def append(path, text):
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)

    def dotdot_stage(f):
        rel = os.path.relpath(os.path.join(outside, "decoder"), f)
        _edit_yaml(f, lambda c: _rename_stage(c, "decoder", rel))

    def absolute_stage(f):
        _edit_yaml(f, lambda c: _rename_stage(c, "decoder", os.path.join(outside, "decoder")))

    def fifo(f):
        os.remove(labels(f))
        os.mkfifo(labels(f))

    def link_loop(f):
        os.remove(labels(f))
        os.symlink(labels(f), labels(f))

    def link_stage_folder(f):
        shutil.rmtree(os.path.join(f, "decoder"))
        os.symlink(os.path.join(outside, "decoder"), os.path.join(f, "decoder"))

    return [
        ("labels_link_to_secret", lambda f: replace_with_link(labels(f), secret), DataError),
        ("vocab_link_to_outside", lambda f: replace_with_link(vocab(f), os.path.join(outside, "vocabulary", "vocab.txt")), DataError),
        ("model_link_to_outside", lambda f: replace_with_link(model(f), os.path.join(outside, "model", "model.keras")), DataError),
        ("stage_folder_link", link_stage_folder, DataError),
        ("yaml_link", lambda f: replace_with_link(os.path.join(f, "pipeline.yaml"), os.path.join(outside, "pipeline.yaml")), DataError),
        ("metadata_link", lambda f: replace_with_link(os.path.join(f, "metadata.json"), secret), DataError),
        ("link_loop", link_loop, DataError),
        ("dangling_link_elsewhere", lambda f: os.symlink("/nonexistent/x", os.path.join(f, "notes.txt")), DataError),
        ("fifo_labels", fifo, DataError),
        ("dotdot_stage_name", dotdot_stage, ConfigError),
        ("absolute_stage_name", absolute_stage, ConfigError),
        ("dotted_stage_name", lambda f: _edit_yaml(f, lambda c: _rename_stage(c, "decoder", "..")), ConfigError),
        ("extra_label", lambda f: append(labels(f), "maybe\n"), DataError),
        ("missing_label", lambda f: write(labels(f), "neg\n"), DataError),
        ("duplicate_label", lambda f: write(labels(f), "neg\nneg\n"), DataError),
        ("empty_labels", lambda f: write(labels(f), ""), DataError),
        ("extra_token", lambda f: append(vocab(f), "多\n"), DataError),
        ("missing_token", lambda f: write(vocab(f), "<pad>\n<unk>\n好\n"), DataError),
        ("duplicate_token", lambda f: append(vocab(f), "<unk>\n"), DataError),
        ("vocab_without_specials", lambda f: write(vocab(f), "a\nb\n"), DataError),
        ("vocab_not_utf8", lambda f: write(vocab(f), b"<pad>\n<unk>\n\xff\xfe\n", "wb"), DataError),
        ("model_garbage", lambda f: write(model(f), b"not a zip file", "wb"), DataError),
        ("model_lambda_unsafe", lambda f: _lambda_model(model(f)), DataError),
        ("model_is_folder", lambda f: (os.remove(model(f)), os.mkdir(model(f))), (DataError, FileNotFoundError)),
        ("metadata_garbage", lambda f: write(os.path.join(f, "metadata.json"), "{not json"), DataError),
        ("metadata_not_object", lambda f: write(os.path.join(f, "metadata.json"), "[1, 2]"), DataError),
        ("metadata_not_utf8", lambda f: write(os.path.join(f, "metadata.json"), b"\xff\xfe{}", "wb"), DataError),
        ("yaml_python_tag", lambda f: write(os.path.join(f, "pipeline.yaml"), "stages: !!python/object/apply:os.system ['echo hacked']\n"), ConfigError),
        ("yaml_duplicate_key", lambda f: append(os.path.join(f, "pipeline.yaml"), "task: classification\n"), ConfigError),
        ("yaml_alias_bomb", lambda f: write(os.path.join(f, "pipeline.yaml"), _ALIAS_BOMB), ConfigError),
    ]


_ALIAS_BOMB = "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}" if i else "x"] * 9) + "]\n" for i in range(9)
) + "stages: *i\n"


class OpenRecorder:
    """Records every path opened through ``open`` / ``io.open`` / ``os.open`` while active."""

    def __init__(self):
        self.paths = []

    def __enter__(self):
        self._saved = (builtins.open, io.open, os.open)
        real_open, real_io_open, real_os_open = self._saved

        def rec_open(file, *a, **k):
            if isinstance(file, (str, bytes, os.PathLike)):
                self.paths.append(os.fsdecode(file))
            return real_open(file, *a, **k)

        def rec_os_open(path, *a, **k):
            self.paths.append(os.fsdecode(path))
            return real_os_open(path, *a, **k)

        builtins.open = io.open = rec_open
        os.open = rec_os_open
        return self

    def __exit__(self, *exc):
        builtins.open, io.open, os.open = self._saved

    def outside(self, folder):
        """Opened paths that resolve outside ``folder`` (and outside the Python installation,
        whose own files libraries may read)."""
        root = os.path.realpath(folder)
        allowed = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        out = []
        for p in self.paths:
            real = os.path.realpath(p)
            if real == root or real.startswith(root + os.sep):
                continue
            if any(real.startswith(a + os.sep) for a in allowed):
                continue
            out.append(p)
        return out


def load_tampered(base, work, name, edit):
    """Copy ``base``, apply ``edit``, load it; returns ``(error or None, paths opened outside)``."""
    folder = os.path.join(work, name)
    shutil.copytree(base, folder, symlinks=True)
    edit(folder)
    with OpenRecorder() as rec:
        try:
            Pipeline.load(folder)
            error = None
        except Exception as err:  # noqa: BLE001  (the caller checks the kind)
            error = err
    return error, rec.outside(folder)


@pytest.fixture(scope="module")
def outside_copy(saved, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("outside") / "elsewhere")
    shutil.copytree(saved, path)
    return path


@pytest.mark.parametrize("case", range(30), ids=lambda i: tampered_folders("/x", "/y")[i][0])
def test_pipeline_load_refuses_a_tampered_folder_and_reads_nothing_outside_it(saved, outside_copy, tmp_path, case):
    name, edit, expected = tampered_folders(saved, outside_copy)[case]
    error, outside = load_tampered(saved, str(tmp_path), name, edit)
    assert isinstance(error, expected), f"{name}: {type(error).__name__}: {error}"
    assert outside == [], f"{name} opened {outside}"
    assert "\n" not in str(error) and len(str(error)) < 1500


def test_tampered_folder_cases_are_all_listed():
    assert len(tampered_folders("/x", "/y")) == 30


def test_pipeline_load_of_an_untouched_copy_reads_only_inside_and_predicts_the_same(saved, tmp_path):
    error, outside = load_tampered(saved, str(tmp_path), "untouched", lambda f: None)
    assert error is None and outside == []
    texts = ["很好看", "太差了", ""]
    assert Pipeline.load(str(tmp_path / "untouched")).predict(texts) == Pipeline.load(saved).predict(texts)


def test_pipeline_config_refuses_a_stage_name_that_is_not_an_identifier():
    config = tiny_config()
    _rename_stage(config, "decoder", "../../x")
    with pytest.raises(ConfigError, match=r"stages must name each stage with a plain identifier.*Received: stages='\.\./\.\./x'"):
        Pipeline.from_config(config)


# ---------------------------------------------------------------------------------------------
# Batch output: the lock, and a run killed at any point resumes to the same bytes.
# ---------------------------------------------------------------------------------------------
def _inputs(folder, n=40):
    path = os.path.join(folder, "in.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{(ZH_POS + ZH_NEG)[i % 12]}{i}\n" for i in range(n)))
    return path


def test_predict_files_refuses_a_second_writer_while_the_lock_is_held(saved, tmp_path):
    src, out = _inputs(str(tmp_path)), str(tmp_path / "out.jsonl")
    with OutputLock(out):
        with pytest.raises(BatchError, match=r"being written by another run \(process \d+\), which holds .*out\.jsonl\.lock"):
            predict_files(saved, src, out, workers=0, overwrite=True)
    assert not os.path.exists(out)
    predict_files(saved, src, out, workers=0)  # released: the next run goes ahead
    assert not os.path.exists(out + ".lock")


def test_predict_files_takes_over_the_lock_of_a_killed_run(saved, tmp_path):
    src, out = _inputs(str(tmp_path)), str(tmp_path / "out.jsonl")
    code = f"import os, fcntl; fd = os.open({out + '.lock'!r}, os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code], check=False)
    assert os.path.exists(out + ".lock")  # left behind by the killed process, but not locked
    summary = predict_files(saved, src, out, workers=0)
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
def test_predict_files_killed_at_any_point_resumes_to_the_same_bytes(saved, tmp_path, monkeypatch, point):
    src = _inputs(str(tmp_path))
    fresh = str(tmp_path / "fresh.jsonl")
    predict_files(saved, src, fresh, workers=0, chunk_size=8)
    out = str(tmp_path / "out.jsonl")
    with monkeypatch.context() as m:
        _kill_at(m, point)
        with pytest.raises(_Killed):
            predict_files(saved, src, out, workers=0, chunk_size=8)
    assert os.path.exists(manifest_path(out))
    predict_files(saved, src, out, workers=0, chunk_size=8, resume=True)
    with open(out, "rb") as a, open(fresh, "rb") as b:
        assert a.read() == b.read()
    assert not os.path.exists(manifest_path(out)) and not os.path.exists(out + ".lock")


def test_predict_files_full_disk_is_a_batch_error_and_the_run_resumes(saved, tmp_path, monkeypatch):
    import errno

    src = _inputs(str(tmp_path))
    fresh, out = str(tmp_path / "fresh.jsonl"), str(tmp_path / "out.jsonl")
    predict_files(saved, src, fresh, workers=0, chunk_size=8)
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
            predict_files(saved, src, out, workers=0, chunk_size=8)
    predict_files(saved, src, out, workers=0, chunk_size=8, resume=True)
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
        "alias_bomb": _ALIAS_BOMB,
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


def test_train_and_evaluate_turn_every_bad_data_file_into_one_error_line(saved, tmp_path, capsys):
    files = bad_data_files(str(tmp_path))
    assert len(files) >= 30
    config = tiny_config()
    config["training"].update(epochs=1, plots=False, checkpoint=False, csv_log=False)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    failures = []
    for name, path, extra, outcome in files:
        code, err = run_cli(["evaluate", saved, "--data", path, *extra, "--quiet"], capsys)
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


def test_save_on_a_full_disk_is_a_data_error_naming_the_file(saved, tmp_path, monkeypatch):
    import errno

    p = Pipeline.load(saved)
    real_open = builtins.open

    def opener(file, mode="r", *a, **k):
        if isinstance(file, str) and file.endswith("labels.txt") and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", file)
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", opener)
    with pytest.raises(DataError, match=r"Cannot save the pipeline to .*labels\.txt: No space left on device"):
        p.save(str(tmp_path / "copy"))


def test_cli_subprocess_error_is_one_line_without_traceback(saved, tmp_path):
    """The real entry point (``python -m pipeline``) on a gzip file cut short."""
    data = tmp_path / "cut.tsv.gz"
    compressed = gzip.compress(("text\tlabel\n" + "".join(f"文本{i}\t{i % 2}\n" for i in range(5000))).encode())
    data.write_bytes(compressed[: len(compressed) // 2])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-m", "pipeline", "evaluate", saved, "--data", str(data), "--quiet"],
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
