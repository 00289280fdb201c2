"""Reliability: every input row comes out (as a row or an error row) in every reader, and a saved
folder loads without reading anything outside it.

The inputs here are small and fixed; ``benchmarks/fuzz.py`` runs the same checks over many
generated variants and reports the figures quoted in docs/reliability.md. Its generators are
the ones defined here (``FAMILIES``, ``VARIANTS``, ``tampered_folders``) and in
``test_reliability_runs.py`` (batch runs, bad configs and data files), so the two cannot drift
apart.
"""

import builtins
import gzip
import io
import json
import os
import shutil
import sys

import pytest
import yaml

from pipeline import Pipeline
from pipeline.batch import iter_rows
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
        ("yaml_alias_bomb", lambda f: write(os.path.join(f, "pipeline.yaml"), ALIAS_BOMB), ConfigError),
    ]


ALIAS_BOMB = "".join(
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
def outside_copy(saved_zh, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("outside") / "elsewhere")
    shutil.copytree(saved_zh, path)
    return path


@pytest.mark.parametrize("case", range(30), ids=lambda i: tampered_folders("/x", "/y")[i][0])
def test_pipeline_load_refuses_a_tampered_folder_and_reads_nothing_outside_it(saved_zh, outside_copy, tmp_path, case):
    name, edit, expected = tampered_folders(saved_zh, outside_copy)[case]
    error, outside = load_tampered(saved_zh, str(tmp_path), name, edit)
    assert isinstance(error, expected), f"{name}: {type(error).__name__}: {error}"
    assert outside == [], f"{name} opened {outside}"
    assert "\n" not in str(error) and len(str(error)) < 1500


def test_tampered_folder_cases_are_all_listed():
    assert len(tampered_folders("/x", "/y")) == 30


def test_pipeline_load_of_an_untouched_copy_reads_only_inside_and_predicts_the_same(saved_zh, tmp_path):
    error, outside = load_tampered(saved_zh, str(tmp_path), "untouched", lambda f: None)
    assert error is None and outside == []
    texts = ["很好看", "太差了", ""]
    assert Pipeline.load(str(tmp_path / "untouched")).predict(texts) == Pipeline.load(saved_zh).predict(texts)


def test_pipeline_config_refuses_a_stage_name_that_is_not_an_identifier():
    config = tiny_config()
    _rename_stage(config, "decoder", "../../x")
    with pytest.raises(ConfigError, match=r"stages must name each stage with a plain identifier.*Received: stages='\.\./\.\./x'"):
        Pipeline.from_config(config)
