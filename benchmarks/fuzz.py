"""Reliability fuzzing: rows in = rows out, safe loading, one-line errors, serving memory.

Run by hand from the repository root; each section prints its figures and ``--json-out``
keeps them all (docs/reliability.md quotes a run):

    python benchmarks/fuzz.py                      # every section (about 10 minutes on 2 CPUs)
    python benchmarks/fuzz.py rows folders         # some of them
    python benchmarks/fuzz.py serving --sizes 1000 10000 100000 --json-out /tmp/fuzz.json

Sections:

- ``rows``: every reader family (classification TSV / CSV / JSONL / fastText / text, the
  ``ktp predict`` readers, CoNLL / char / tagging JSONL, aligned / TSV / CSV parallel corpora)
  over every malformed-file family of ``tests/test_reliability.py`` (line endings LF, CRLF,
  CR, mixed; BOM; no final newline; undecodable bytes; NUL; stray quotes; gzip), then
  ``--files`` random files per family with random line endings, compression and damage
  (undecodable bytes, stray quotes, NUL, JSON cut short) in random records. Reports records
  in and rows + error rows out; a file whose counts differ is listed.
- ``folders``: tampered saved folders (links to files outside, ``../`` and absolute stage
  names, FIFOs, link loops, assets that do not fit the model, unsafe Keras models, bad YAML)
  for a classifier and a tagger, each loaded with ``open`` / ``io.open`` / ``os.open``
  patched: files opened outside the folder (0 expected), and how many loaded (0 expected).
- ``configs``: ``ktp validate`` on the bad configs of the test suite plus ``--mutations``
  random mutations of a valid config: exit codes, and tracebacks (an exception escaping the
  CLI; 0 expected); ``--subprocess`` of them also through ``python -m pipeline``.
- ``data``: ``ktp evaluate``, ``ktp train`` and ``ktp predict`` on the bad data files of the
  test suite: exit codes and tracebacks.
- ``texts``: ``--texts`` random texts (any code point but surrogates, combining marks, quotes,
  line breaks) through ``Pipeline.predict`` and ``ktp predict`` for a classifier and a tagger:
  exceptions, rows in / out.
- ``marks``: the char tokenizer's graph tokens (``pipeline.export.GraphText``) against
  ``CharTokenizer.transform`` on texts with combining marks: differing texts (0 expected).
- ``nltk``: seconds of ``tokenize_with_offsets`` with the NLTK tokenizer on quote-heavy text of
  32k to 256k characters (linear expected).
- ``serving``: peak memory of a char-level CRF tagger SavedModel's ``serving_default`` on one
  text of each ``--sizes`` characters, each in a fresh process (the rise of the resident set
  during the call over the resident set before it; Linux ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import io
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests import test_reliability as rel  # noqa: E402  (the generators the tests use)
from tests import test_reliability_runs as runs  # noqa: E402
from tests.conftest import ZH_NEG, ZH_POS, tiny_config  # noqa: E402

SECTIONS = ("rows", "folders", "configs", "data", "texts", "marks", "nltk", "serving")


def _quiet():
    logging.getLogger("ktp").setLevel(logging.ERROR)
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------
_SAFE_CHARS = "很好看太难喜欢讨厌非常差劲服务质量不错推荐购买会再来abcxyz 0123456789"


def _random_text(rng, lo=1, hi=30):
    return "".join(rng.choice(_SAFE_CHARS) for _ in range(rng.randint(lo, hi))).strip() or "好"


def _random_record(rng, kind, fmt, how):
    """One record of a ``kind`` / ``fmt`` file with the damage ``how`` (or None); returns
    ``(record, target)``, ``target`` being the other side's line of an aligned corpus (or None)."""
    text = _random_text(rng)
    if how == "quote":
        text = '"' + text if fmt == "csv" else text[:1] + '"' + text[1:]
    elif how == "nul":
        text = text + "\x00"
    label = rng.choice(["pos", "neg"])
    target = None
    if kind in ("corpus", "batch"):
        if fmt == "csv" and how != "quote" and rng.random() < 0.2:
            text = '"' + text.replace('"', '""') + ', and\nmore"'  # a legal field over two lines
        rec = {"csv": f"{text},{label}", "tsv": f"{text}\t{label}", "fasttext": f"{label} {text}",
               "jsonl": json.dumps({"text": text, "label": label}, ensure_ascii=False)}.get(fmt, text)
    elif kind == "tagged":
        chars = [c for c in text if not c.isspace()] or ["好"]
        if fmt == "jsonl":
            rec = json.dumps({"text": "".join(chars), "entities": [[0, 1, "PER"]]}, ensure_ascii=False)
        else:
            rec = "\n".join(f"{c} {'B-PER' if j == 0 else 'O'}" for j, c in enumerate(chars))
    else:
        other = _random_text(rng)
        rec = {"csv": f"{text},{other}", "tsv": f"{text}\t{other}"}.get(fmt, text)
        target = None if fmt in ("csv", "tsv") else other
    if how == "cut_json":
        rec = rec[: len(rec) // 2]
    if how == "bytes":
        rec = rec + "\udcff"  # written as an undecodable byte
    return rec, target


def _random_file(rng, folder, family, index, n):
    """A random file (two for ``aligned``) of ``family`` with ``n`` records, random line
    endings and compression, and damage in random records; returns ``(path, kind, options)``."""
    _, suffix, kind, options = rel.FAMILIES[family]
    fmt = options["format"]
    damage = {}
    for i in rng.sample(range(n), k=rng.randint(0, max(1, n // 10))):
        damage[i] = rng.choice(["bytes", "quote", "nul"] + (["cut_json"] if fmt == "jsonl" else []))
    records, targets = [], []
    for i in range(n):
        rec, target = _random_record(rng, kind, fmt, damage.get(i))
        records.append(rec)
        if target is not None:
            targets.append(target)
    header = {"csv": "text,label", "tsv": "text\tlabel"}.get(fmt) if kind in ("corpus", "batch") else None
    if kind == "parallel":
        header = {"csv": "source,target", "tsv": "source\ttarget"}[fmt]
    sep = "\n\n" if kind == "tagged" and fmt != "jsonl" else "\n"
    ending = rng.choice(["\n", "\r\n", "\r", "mixed"])
    zipped = rng.random() < 0.3
    bom = rng.random() < 0.1

    def encode(text):
        text = ("\ufeff" if bom else "") + text
        if ending == "mixed":
            text = rel._mixed(text)
        else:
            text = text.replace("\n", ending)
        data = text.encode("utf-8", "surrogateescape")
        return gzip.compress(data) if zipped else data

    body = ((header + "\n") if header else "") + sep.join(records) + "\n"
    opts = {**options, "on_error": "skip"}
    gz = ".gz" if zipped else ""
    base = os.path.join(folder, f"{family}-{index}")
    if kind == "aligned":
        with open(f"{base}.de{gz}", "wb") as f:
            f.write(encode(body))
        with open(f"{base}.en{gz}", "wb") as f:
            f.write(encode("\n".join(targets) + "\n"))
        opts.update(source_lang="de" + gz, target_lang="en" + gz, on_empty="skip")
        return base, kind, opts
    path = base + suffix + gz
    with open(path, "wb") as f:
        f.write(encode(body))
    if kind == "parallel":
        opts["on_empty"] = "skip"
    return path, kind, opts


def section_rows(args):
    folder = tempfile.mkdtemp(prefix="ktp-fuzz-rows-")
    per_family = collections.defaultdict(lambda: {"files": 0, "records_in": 0, "rows_out": 0, "differ": []})
    for family, variant in rel.ROW_CASES:
        path, kind, options, expected = rel.write_family(folder, family, variant)
        got = rel.rows_out(path, kind, options)
        entry = per_family[family]
        entry["files"] += 1
        entry["records_in"] += expected
        entry["rows_out"] += got
        if got != expected:
            entry["differ"].append(f"{variant}: {expected} in, {got} out")
    rng = random.Random(args.seed)
    for family in rel.FAMILIES:
        for i in range(args.files):
            n = rng.randint(1, args.records)
            path, kind, options = _random_file(rng, folder, family, i, n)
            try:
                got = rel.rows_out(path, kind, options)
            except Exception as err:  # noqa: BLE001  (a file-level error is a finding too)
                got = f"{type(err).__name__}: {err}"
            entry = per_family[family]
            entry["files"] += 1
            entry["records_in"] += n
            if isinstance(got, int):
                entry["rows_out"] += got
            if got != n:
                entry["differ"].append(f"{os.path.basename(path)}: {n} in, {got} out")
    shutil.rmtree(folder, ignore_errors=True)
    total_in = sum(e["records_in"] for e in per_family.values())
    total_out = sum(e["rows_out"] for e in per_family.values())
    print(f"rows: {sum(e['files'] for e in per_family.values())} files, {total_in} records in, {total_out} rows + error rows out")
    for family, e in per_family.items():
        print(f"  {family:<14} {e['files']:>4} files  {e['records_in']:>7} in  {e['rows_out']:>7} out"
              + (f"  DIFFER: {e['differ'][:3]}" if e["differ"] else ""))
    return {"families": dict(per_family), "records_in": total_in, "rows_out": total_out}


# --------------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------------
def _tagger_cases(outside):
    secret = rel._secret_file()

    def tags(f):
        return os.path.join(f, "decoder", "tags.txt")

    def relink(path, target):
        os.remove(path)
        os.symlink(target, path)

    def append(path, text):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)

    def first_line_twice(path):
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join([lines[0]] + lines))

    return [
        ("tagger_tags_link_to_secret", lambda f: relink(tags(f), secret), rel.DataError),
        ("tagger_tags_link_outside", lambda f: relink(tags(f), os.path.join(outside, "decoder", "tags.txt")), rel.DataError),
        ("tagger_extra_tag", lambda f: append(tags(f), "B-XXX\n"), rel.DataError),
        ("tagger_duplicate_tag", lambda f: first_line_twice(tags(f)), (rel.DataError, ValueError)),
        ("tagger_extra_token", lambda f: append(os.path.join(f, "vocabulary", "vocab.txt"), "多\n"), rel.DataError),
        ("tagger_model_link", lambda f: relink(os.path.join(f, "model", "model.keras"), os.path.join(outside, "model", "model.keras")), rel.DataError),
        ("tagger_stage_dotdot", lambda f: rel._edit_yaml(f, lambda c: rel._rename_stage(c, "decoder", "../x")), rel.ConfigError),
    ]


def _fit_tagger():
    from pipeline import Pipeline
    from tests.test_tagging import ZH_SPANS, ZH_TEXTS, tagging_config

    p = Pipeline.from_config(tagging_config(tokenizer="char", data={"format": "jsonl"}))
    return p.fit(ZH_TEXTS * 3, ZH_SPANS * 3)


def section_folders(args):
    from pipeline import Pipeline

    work = tempfile.mkdtemp(prefix="ktp-fuzz-folders-")
    p = Pipeline.from_config(tiny_config())
    p.fit(ZH_POS + ZH_NEG, ["pos"] * 6 + ["neg"] * 6)
    classifier = p.save(os.path.join(work, "classifier"))
    tagger = _fit_tagger().save(os.path.join(work, "tagger"))
    results = []
    for base, cases_of in ((classifier, rel.tampered_folders), (tagger, None)):
        outside = os.path.join(work, "outside-" + os.path.basename(base))
        shutil.copytree(base, outside)
        cases = cases_of(base, outside) if cases_of else _tagger_cases(outside)
        marker = os.path.join(work, "hacked")

        def python_tag(f, marker=marker):
            with open(os.path.join(f, "pipeline.yaml"), "w", encoding="utf-8") as fh:
                fh.write(f"stages: !!python/object/apply:os.system ['touch {marker}']\n")

        cases.append(("yaml_python_tag_touch", python_tag, rel.ConfigError))
        for name, edit, expected in cases:
            error, opened = rel.load_tampered(base, os.path.join(work, "runs"), f"{os.path.basename(base)}-{name}", edit)
            results.append({
                "case": f"{os.path.basename(base)}/{name}",
                "loaded": error is None,
                "error": None if error is None else f"{type(error).__name__}: {str(error)[:160]}",
                "expected_kind": isinstance(error, expected),
                "one_line": error is None or "\n" not in str(error),
                "opened_outside": opened,
            })
        results.append({"case": "ran_code", "loaded": False, "expected_kind": not os.path.exists(marker), "one_line": True, "opened_outside": []})
    shutil.rmtree(work, ignore_errors=True)
    outside = sum(len(r["opened_outside"]) for r in results)
    loaded = sum(r["loaded"] for r in results)
    wrong = [r["case"] for r in results if not r["expected_kind"] or not r["one_line"]]
    print(f"folders: {len(results) - 2} tampered folders, {loaded} loaded, {outside} files opened outside the folder, "
          f"{len(wrong)} with an unexpected or multi-line error {wrong if wrong else ''}")
    return {"cases": results, "tampered": len(results) - 2, "loaded": loaded, "opened_outside": outside, "unexpected": wrong}


# --------------------------------------------------------------------------------------------
# configs and data: the CLI in this process (an exception escaping it is a traceback)
# --------------------------------------------------------------------------------------------
def _run_cli(argv):
    from pipeline.cli import main

    err = io.StringIO()
    handlers = list(logging.root.handlers)
    traceback_ = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # noqa: BLE001  (what the user would see as a traceback)
            code, traceback_ = "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            logging.root.handlers[:] = handlers
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.startswith("ktp")]
    return code, traceback_, lines


_BAD_VALUES = [None, -1, 0, 10**12, "x", "", [], {}, True, 1.5, float("nan"), "x" * 10_000, [[[]]], {"a": {"b": 1}}]


def _mutations(rng, n):
    base = tiny_config()
    paths = []
    for section in ("stages", "training", "data"):
        if section == "stages":
            for stage, options in base["stages"].items():
                for key in list(options) + ["type", "unknown_option"]:
                    paths.append((section, stage, key))
        else:
            for key in ("epochs", "batch_size", "seed", "format", "encoding", "text_column", "on_error", "verbose"):
                paths.append((section, None, key))
    out = []
    for i in range(n):
        config = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            section, stage, key = rng.choice(paths)
            target = config.setdefault(section, {}) if stage is None else config["stages"][stage]
            target[key] = rng.choice(_BAD_VALUES)
        out.append((f"mutation_{i}", config))
    return out


def section_configs(args):
    import yaml

    folder = tempfile.mkdtemp(prefix="ktp-fuzz-configs-")
    cases = list(runs.bad_configs(folder))
    for name, config in _mutations(random.Random(args.seed), args.mutations):
        path = os.path.join(folder, name + ".yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, allow_unicode=True)
        cases.append((name, path))
    codes = collections.Counter()
    tracebacks, long_lines, multi = [], 0, []
    for name, path in cases:
        code, tb, lines = _run_cli(["validate", path, "--quiet"])
        codes[str(code)] += 1
        if tb:
            tracebacks.append((name, tb))
        if code == 2 and len(lines) != 1:
            multi.append(name)
        long_lines = max([long_lines] + [len(line) for line in lines])
    sub = []
    for name, path in cases[: args.subprocess]:
        run = subprocess.run([sys.executable, "-m", "pipeline", "validate", path], cwd=ROOT, capture_output=True, text=True, timeout=600)
        sub.append({"case": name, "code": run.returncode, "traceback": "Traceback" in run.stderr})
    shutil.rmtree(folder, ignore_errors=True)
    fixed = len(cases) - args.mutations
    print(f"configs: {len(cases)} configs ({fixed} hand-written, {args.mutations} mutations): exit codes {dict(codes)}, "
          f"{len(tracebacks)} tracebacks, {len(multi)} errors not on one line, longest error line {long_lines} characters")
    if sub:
        print(f"  through python -m pipeline: {len(sub)} runs, {sum(s['traceback'] for s in sub)} tracebacks, codes {[s['code'] for s in sub]}")
    for name, tb in tracebacks[:10]:
        print(f"  TRACEBACK {name}: {tb}")
    return {"configs": len(cases), "exit_codes": dict(codes), "tracebacks": tracebacks, "not_one_line": multi,
            "longest_error_line": long_lines, "subprocess": sub}


def section_data(args):
    import yaml

    from pipeline import Pipeline

    folder = tempfile.mkdtemp(prefix="ktp-fuzz-data-")
    p = Pipeline.from_config(tiny_config())
    p.fit(ZH_POS + ZH_NEG, ["pos"] * 6 + ["neg"] * 6)
    model = p.save(os.path.join(folder, "model"))
    config = tiny_config()
    config["training"].update(epochs=1, plots=False, checkpoint=False, csv_log=False)
    config_path = os.path.join(folder, "tiny.yaml")
    with open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True)
    os.makedirs(os.path.join(folder, "files"))
    files = runs.bad_data_files(os.path.join(folder, "files"))
    results, tracebacks = [], []
    for name, path, extra, outcome in files:
        for command, argv in (
            ("evaluate", ["evaluate", model, "--data", path, *extra, "--quiet"]),
            ("train", ["train", config_path, "--train", path, "--output", os.path.join(folder, "run"), "--quiet"]),
            ("predict", ["predict", model, "--input", path, "--output", os.path.join(folder, "out.jsonl"), "--overwrite",
                         "--workers", "0", "--quiet", *extra]),
        ):
            if command == "train" and (extra or outcome == "ok"):
                continue  # training on a readable file is slow and proves nothing here
            code, tb, lines = _run_cli(argv)
            results.append({"file": name, "command": command, "code": code, "error": lines[:1]})
            if tb:
                tracebacks.append((name, command, tb))
    shutil.rmtree(folder, ignore_errors=True)
    codes = collections.Counter(f"{r['command']}:{r['code']}" for r in results)
    print(f"data: {len(files)} bad data files, {len(results)} runs of evaluate / train / predict: {len(tracebacks)} tracebacks; "
          f"exit codes {dict(sorted(codes.items()))}")
    for t in tracebacks[:10]:
        print(f"  TRACEBACK {t}")
    return {"files": len(files), "runs": results, "tracebacks": tracebacks}


# --------------------------------------------------------------------------------------------
# texts, marks, nltk
# --------------------------------------------------------------------------------------------
def _fuzz_texts(rng, n):
    pools = [
        lambda: "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(0, 40))),
        lambda: "".join(chr(rng.choice([rng.randint(0x300, 0x36F), rng.randint(0x61, 0x7A), rng.randint(0x4E00, 0x4FFF)])) for _ in range(rng.randint(0, 30))),
        lambda: "".join(rng.choice(['"', "'", "``", "''", " ", "\t", "\n", "\r", "好", "a", "\u200b", "\ufeff", "\x00"]) for _ in range(rng.randint(0, 30))),
        lambda: "".join(chr(rng.randint(0x10000, 0x1FFFF)) for _ in range(rng.randint(0, 10))),
        lambda: "",
    ]
    return [rng.choice(pools)() for _ in range(n)]


def section_texts(args):
    from pipeline import Pipeline
    from pipeline.batch import predict_files

    rng = random.Random(args.seed)
    texts = _fuzz_texts(rng, args.texts)
    p = Pipeline.from_config(tiny_config())
    p.fit(ZH_POS + ZH_NEG, ["pos"] * 6 + ["neg"] * 6)
    tagger = _fit_tagger()
    report = {}
    for name, pipe in (("classifier", p), ("tagger", tagger)):
        errors = 0
        for start in range(0, len(texts), 512):
            try:
                answers = pipe.predict(texts[start: start + 512])
                assert len(answers) == len(texts[start: start + 512])
            except Exception:  # noqa: BLE001
                errors += 1
        folder = tempfile.mkdtemp(prefix="ktp-fuzz-texts-")
        src = os.path.join(folder, "in.jsonl")
        with open(src, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        summary = predict_files(pipe, src, os.path.join(folder, "out.jsonl"), workers=0)
        shutil.rmtree(folder, ignore_errors=True)
        report[name] = {"texts": len(texts), "predict_batches_failed": errors, "batch_rows_out": summary["rows"], "batch_error_rows": summary["errors"]}
        print(f"texts/{name}: {len(texts)} fuzzed texts: Pipeline.predict failed on {errors} batches; "
              f"ktp predict wrote {summary['rows']} rows ({summary['errors']} error rows)")
    return report


def _mark_texts(rng, n):
    marks = [chr(c) for c in range(0x300, 0x370)] + ["\u0e31", "\u0e34", "\u093f", "\u0f71", "\u3099", "\u309a", "\u20dd", "\ufe0f"]
    bases = "aeiouAEIOUnNcCsSzZ\u00c5\u00e9\u0130\u1e9e\uff21\uff41\u3042\u304b\u30ab\uac00\u0e01\u0915\u0f40\ufb01\u2126\u212b 好京"
    out = []
    for _ in range(n):
        text = []
        for _ in range(rng.randint(1, 12)):
            text.append(rng.choice(bases))
            text.extend(rng.choice(marks) for _ in range(rng.randint(0, 3)))
        out.append("".join(text))
    return out


def section_marks(args):
    import tensorflow as tf

    from pipeline.export import GraphText
    from stages.tokenizers import CharTokenizer

    texts = _mark_texts(random.Random(args.seed), args.marks)
    report = {}
    for options in ({}, {"lowercase": True}, {"nfkc": False}):
        tokenizer = CharTokenizer(**options)
        graph = GraphText(tokenizer).tokenize(tf.constant(texts)).to_list()
        python = tokenizer.transform(texts)
        differ = [t for t, g, py in zip(texts, graph, python) if [x.decode("utf-8") for x in g] != py]
        key = ",".join(f"{k}={v}" for k, v in options.items()) or "default"
        report[key] = {"texts": len(texts), "differ": len(differ), "examples": [unicodedata.name(c[0], "?") for c in differ[:3]]}
        print(f"marks: char tokenizer ({key}): {len(texts)} texts with combining marks, {len(differ)} differ between graph and Python")
    return report


def section_nltk(args):
    from pipeline.tagging import tokenize_with_offsets
    from stages.tokenizers import NLTKTokenizer

    tokenizer = NLTKTokenizer()
    unit = 'He said "no" and `` she \'\' said \'yes\' "" ok. '
    tokenize_with_offsets(tokenizer, unit * 100)
    out = {}
    for n in (32_000, 64_000, 128_000, 256_000):
        text = (unit * (n // len(unit) + 1))[:n]
        best = min(_timed(lambda: tokenize_with_offsets(tokenizer, text)) for _ in range(3))
        out[n] = round(best, 3)
    print("nltk: tokenize_with_offsets on quote-heavy text: " + ", ".join(f"{n // 1000}k chars {s:.3f} s" for n, s in out.items())
          + f" (256k / 32k = {out[256_000] / out[32_000]:.1f}; linear 8, quadratic 64)")
    return {"seconds": out}


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# serving memory
# --------------------------------------------------------------------------------------------
#: the probe each size runs in a fresh process: ``python serving_peak_memory.py SAVED_MODEL CHARS``
_MEASURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_peak_memory.py")


def section_serving(args):
    from pipeline import Pipeline  # noqa: F401

    folder = tempfile.mkdtemp(prefix="ktp-fuzz-serving-")
    path = os.path.join(folder, "saved_model")
    tagger = _fit_tagger()
    tagger.export(path)
    rows = []
    for n in args.sizes:
        run = subprocess.run([sys.executable, _MEASURE, path, str(n)], capture_output=True, text=True, timeout=600)
        line = next((x for x in run.stdout.splitlines() if x.startswith("{")), None)
        if line is None:
            print(f"serving: {n} chars FAILED: {run.stderr[-800:]}")
            continue
        row = json.loads(line)
        row["rise_kb"] = row["peak_kb"] - row["rss_before_kb"]
        rows.append(row)
    shutil.rmtree(folder, ignore_errors=True)
    print("serving: char CRF tagger serving_default, one text, peak rise of resident memory during the call:")
    first = rows[0] if rows else None
    for row in rows:
        per_k = row["rise_kb"] / (row["chars"] / 1000)
        ratio = f", {per_k / (first['rise_kb'] / (first['chars'] / 1000)):.2f}x the {first['chars'] // 1000}k figure" if first and first["rise_kb"] else ""
        print(f"  {row['chars']:>7} chars: +{row['rise_kb'] / 1024:.1f} MiB (peak {row['peak_kb'] / 1024:.0f} MiB), "
              f"{per_k:.0f} KiB per 1k chars{ratio}, {row['seconds']:.2f} s")
    return {"rows": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"sections to run: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--files", type=int, default=40, help="random files per reader family (rows)")
    parser.add_argument("--records", type=int, default=300, help="most records per random file (rows)")
    parser.add_argument("--mutations", type=int, default=200, help="random config mutations (configs)")
    parser.add_argument("--subprocess", type=int, default=2, help="configs also run through python -m pipeline (configs)")
    parser.add_argument("--texts", type=int, default=20_000, help="fuzzed texts (texts)")
    parser.add_argument("--marks", type=int, default=3000, help="texts with combining marks (marks)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000], help="text lengths (serving)")
    parser.add_argument("--json-out", help="write every figure as JSON")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    sections = args.sections or list(SECTIONS)
    _quiet()
    report = {"machine": f"{platform.platform()}, {os.cpu_count()} CPUs", "python": platform.python_version(), "args": vars(args)}
    for name in sections:
        t0 = time.perf_counter()
        report[name] = globals()[f"section_{name}"](args)
        report[name + "_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"  ({name}: {report[name + '_seconds']} s)", flush=True)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, ensure_ascii=False, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
