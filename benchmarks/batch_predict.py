"""Batch prediction speed and memory: ``ktp predict`` against the obvious one-process loop.

1. speed: rows/s of ``ktp predict`` (worker pool for jieba, length bucketing, tokenisation of
   the next chunk overlapping the model's work) against the baseline most people would write
   first: one process, ``jieba.lcut`` per line, vocabulary lookup, padding to the fixed
   ``max_length``, ``model.predict`` on each chunk with the same batch size. Both read the same
   corpus, use the same saved BiLSTM and write one JSON line per input line. Target: >= 2.0x.
2. memory: peak resident memory of ``ktp predict`` over a large corpus against a small one (the
   large one a repetition of the small one); streaming should keep them level. Target: <= 1.2x.

Both sides run as separate processes, one after the other, in the same invocation (which goes
first alternates from round to round), so they share the machine's load at that moment; rates count from the first input row to the last
output row (model loading excluded), and the wall time including start-up is printed too.

The corpus is built from the ChnSentiCorp texts (train + dev, cycled in a fixed shuffled order)
under --workdir, never in the repository.

Usage:
    python benchmarks/batch_predict.py speed  --lines 200000 [--workdir /tmp/ktp_batch_bench]
    python benchmarks/batch_predict.py memory --small 50000 --large 1000000 [--model tiny]
    python benchmarks/batch_predict.py baseline MODEL_DIR INPUT OUTPUT   (the baseline alone)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "chnsenticorp"))
CHUNK = 4096
BATCH = 256


# -- corpus and model ---------------------------------------------------------------------------
def corpus_texts(data_dir):
    texts = []
    for split in ("train.tsv", "dev.tsv"):
        with open(os.path.join(data_dir, split), encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            col = header.index("text_a")
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == len(header):
                    texts.append(parts[col].replace("\r", " "))
    return texts


def build_corpus(data_dir, lines, path):
    if os.path.exists(path):
        return path
    texts = corpus_texts(data_dir)
    rng = random.Random(20261126)
    order = list(range(len(texts)))
    rng.shuffle(order)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(lines):
            f.write(texts[order[i % len(order)]] + "\n")
    os.replace(tmp, path)
    return path


def bilstm_config():
    # data/configs/chnsenticorp.yaml's model: jieba words, 128-d embeddings, BiLSTM 64 per
    # direction, max-pooling, max_length 160.
    return {
        "name": "batch_bench_bilstm",
        "stages": {
            "tokenizer": {"type": "jieba", "lowercase": True},
            "vocabulary": {"min_freq": 2, "max_size": 20000},
            "vectorizer": {"type": "embedding", "dim": 128, "max_length": 160},
            "model": {"type": "rnn_classifier", "cell": "lstm", "units": 64, "bidirectional": True, "pooling": "max"},
            "decoder": {"type": "label"},
        },
        "training": {"epochs": 1, "batch_size": 64, "verbose": 0, "checkpoint": False, "csv_log": False, "plots": False,
                     "predict_batch_size": BATCH},
    }


def tiny_config():
    return {
        "name": "batch_bench_tiny",
        "stages": {
            "tokenizer": {"type": "char"},
            "vocabulary": {"max_size": 5000},
            "vectorizer": {"type": "embedding", "dim": 8, "max_length": 64},
            "model": {"type": "rnn_classifier", "cell": "lstm", "units": 4, "bidirectional": False},
            "decoder": {"type": "label"},
        },
        "training": {"epochs": 1, "batch_size": 64, "verbose": 0, "checkpoint": False, "csv_log": False, "plots": False,
                     "predict_batch_size": BATCH},
    }


def train_model(data_dir, path, kind, train_rows):
    """Train (once; reused afterwards) a classifier on ChnSentiCorp train and save it to ``path``."""
    if os.path.isfile(os.path.join(path, "metadata.json")):
        return path
    from pipeline import Pipeline
    from pipeline.readers import read_corpus

    corpus = read_corpus(os.path.join(data_dir, "train.tsv"), {"format": "tsv", "text_column": "text_a", "label_column": "label"})
    p = Pipeline.from_config(bilstm_config() if kind == "bilstm" else tiny_config())
    t0 = time.perf_counter()
    p.fit(corpus.texts[:train_rows], corpus.labels[:train_rows])
    print(f"trained the {kind} model on {min(train_rows, len(corpus.texts))} texts in {time.perf_counter() - t0:.0f}s", flush=True)
    p.save(path)
    return path


# -- the baseline ---------------------------------------------------------------------------------
def baseline(model_dir, input_path, output_path):
    """One process: jieba.lcut per line, vocabulary lookup, fixed-length padding, model.predict."""
    import unicodedata

    import jieba
    import keras
    import numpy as np
    import yaml

    jieba.setLogLevel(60)
    with open(os.path.join(model_dir, "pipeline.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    max_length = config["stages"]["vectorizer"]["max_length"]
    lowercase = config["stages"]["tokenizer"].get("lowercase", False)
    nfkc = config["stages"]["tokenizer"].get("nfkc", True)
    with open(os.path.join(model_dir, "vocabulary", "vocab.txt"), encoding="utf-8") as f:
        vocab = {token: i for i, token in enumerate(f.read().split("\n")[:-1])}
    with open(os.path.join(model_dir, "decoder", "labels.txt"), encoding="utf-8") as f:
        labels = f.read().split("\n")[:-1]
    from stages import layers  # noqa: F401  (custom layers)

    model = keras.saving.load_model(os.path.join(model_dir, "model", "model.keras"))
    jieba.initialize()
    t0 = time.perf_counter()
    rows = 0
    with open(input_path, encoding="utf-8") as src, open(output_path, "w", encoding="utf-8") as out:
        while True:
            lines = [line.rstrip("\n") for _, line in zip(range(CHUNK), src)]
            if not lines:
                break
            x = np.zeros((len(lines), max_length), dtype=np.int32)
            for i, line in enumerate(lines):
                # The same normalisation the pipeline's tokenizer applies, so the ids match.
                text = unicodedata.normalize("NFKC", line) if nfkc else line
                text = text.lower() if lowercase else text
                ids = [vocab.get(w, 1) for w in jieba.lcut(text) if w.strip()][:max_length]
                x[i, : len(ids)] = ids
            scores = model.predict(x, batch_size=BATCH, verbose=0)
            for i, row in enumerate(scores):
                best = int(row.argmax())
                out.write(json.dumps({"line": rows + i + 1, "label": labels[best], "score": float(row[best])}) + "\n")
            rows += len(lines)
    seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds, 1)}


# -- measuring processes --------------------------------------------------------------------------
def _tree(pid):
    pids = [pid]
    i = 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids.extend(int(c) for c in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def _rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd, env=None):
    """Run ``cmd``; returns (wall seconds, peak RSS of the main process kB, peak summed RSS of its
    process tree kB, stdout)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    peak_main = peak_tree = 0
    stop = threading.Event()

    def sample():
        nonlocal peak_main, peak_tree
        while not stop.is_set():
            peak_main = max(peak_main, _rss_kb(proc.pid))
            peak_tree = max(peak_tree, sum(_rss_kb(p) for p in _tree(proc.pid)))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    # CPU seconds of the process and all its (waited-for) descendants, start-up included.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak_main, peak_tree, out, err, cpu


def run_ktp(model_dir, input_path, output_path, extra=()):
    summary_path = output_path + ".summary.json"
    cmd = [sys.executable, "-m", "pipeline.batch", model_dir, "--input", input_path, "--output", output_path,
           "--overwrite", "--quiet", "--summary-json", summary_path, *extra]
    wall, peak_main, peak_tree, _, _, cpu = run_measured(cmd)
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    return {"rows": summary["rows"], "errors": summary["errors"], "seconds": summary["seconds"],
            "rows_per_second": summary["rows_per_second"], "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "peak_rss_main_mb": round(peak_main / 1024), "peak_rss_tree_mb": round(peak_tree / 1024),
            "workers": summary["workers"], "chunk_size": summary["chunk_size"], "batch_size": summary["batch_size"]}


def run_baseline(model_dir, input_path, output_path):
    cmd = [sys.executable, os.path.abspath(__file__), "baseline", model_dir, input_path, output_path]
    wall, peak_main, _, out, _, cpu = run_measured(cmd)
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_seconds=round(wall, 1), cpu_seconds=round(cpu, 1), peak_rss_main_mb=round(peak_main / 1024))
    return result


def agreement(a_path, b_path):
    same = total = 0
    with open(a_path, encoding="utf-8") as a, open(b_path, encoding="utf-8") as b:
        for la, lb in zip(a, b):
            total += 1
            same += json.loads(la)["label"] == json.loads(lb)["label"]
    return same / max(total, 1)


def machine():
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    return {"cpus": cpus, "load_average": [round(x, 2) for x in os.getloadavg()]}


# -- commands ----------------------------------------------------------------------------------------
def prefix_file(path, lines, out_path):
    if not os.path.exists(out_path):
        with open(path, encoding="utf-8") as src, open(out_path + ".tmp", "w", encoding="utf-8") as out:
            for _, line in zip(range(lines), src):
                out.write(line)
        os.replace(out_path + ".tmp", out_path)
    return out_path


def cmd_speed(args):
    import statistics

    os.makedirs(args.workdir, exist_ok=True)
    full = build_corpus(args.data_dir, args.corpus_lines, os.path.join(args.workdir, f"corpus_{args.corpus_lines}.txt"))
    corpus = full if args.lines >= args.corpus_lines else prefix_file(full, args.lines, os.path.join(args.workdir, f"corpus_{args.corpus_lines}_first_{args.lines}.txt"))
    model = args.model or train_model(args.data_dir, os.path.join(args.workdir, "bilstm"), "bilstm", args.train_rows)
    before = machine()
    print(json.dumps({"machine_before": before}), flush=True)
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    results = {"lines": args.lines, "corpus_lines": args.corpus_lines, "model": model, "machine_before": before, "rounds": []}
    for r in range(args.rounds):
        # Alternate which side goes first, so a drift in the machine's load hits both alike.
        if r % 2 == 0:
            base = run_baseline(model, corpus, os.path.join(args.workdir, "baseline.jsonl"))
            ours = run_ktp(model, corpus, os.path.join(args.workdir, "ktp.jsonl"), extra)
        else:
            ours = run_ktp(model, corpus, os.path.join(args.workdir, "ktp.jsonl"), extra)
            base = run_baseline(model, corpus, os.path.join(args.workdir, "baseline.jsonl"))
        ratio = ours["rows_per_second"] / base["rows_per_second"]
        same = agreement(os.path.join(args.workdir, "baseline.jsonl"), os.path.join(args.workdir, "ktp.jsonl"))
        round_result = {"first": "baseline" if r % 2 == 0 else "ktp_predict", "load_average": machine()["load_average"], "baseline": base, "ktp_predict": ours, "speedup": round(ratio, 2),
                        "wall_speedup": round(base["wall_seconds"] / ours["wall_seconds"], 2), "label_agreement": round(same, 4)}
        results["rounds"].append(round_result)
        print(json.dumps(round_result), flush=True)
    results["median_speedup"] = round(statistics.median(r["speedup"] for r in results["rounds"]), 2)
    results["machine_after"] = machine()
    print(json.dumps(results, indent=1))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


def cmd_memory(args):
    os.makedirs(args.workdir, exist_ok=True)
    small = build_corpus(args.data_dir, args.small, os.path.join(args.workdir, f"corpus_{args.small}.txt"))
    large = build_corpus(args.data_dir, args.large, os.path.join(args.workdir, f"corpus_{args.large}.txt"))
    model = train_model(args.data_dir, os.path.join(args.workdir, args.model), args.model, args.train_rows)
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    out = os.path.join(args.workdir, "memory.jsonl")
    a = run_ktp(model, small, out, extra)
    b = run_ktp(model, large, out, extra)
    os.remove(out)
    results = {"model": args.model, "small": a, "large": b,
               "ratio_main": round(b["peak_rss_main_mb"] / a["peak_rss_main_mb"], 3),
               "ratio_tree": round(b["peak_rss_tree_mb"] / a["peak_rss_tree_mb"], 3), "machine": machine()}
    print(json.dumps(results, indent=1))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "memory"):
        p = sub.add_parser(name)
        p.add_argument("--workdir", default="/tmp/ktp_batch_bench", help="corpus, models and outputs go here (not the repo)")
        p.add_argument("--data-dir", default=DEFAULT_DATA, help="the ChnSentiCorp folder (train.tsv, dev.tsv)")
        p.add_argument("--train-rows", type=int, default=9600, help="training texts for the benchmark model")
        p.add_argument("--workers", type=int, help="ktp predict --workers (default: its own default)")
        p.add_argument("--json-out", help="write the results here as JSON")
    speed = sub.choices["speed"]
    speed.add_argument("--corpus-lines", type=int, default=200_000, help="lines of the corpus built under --workdir")
    speed.add_argument("--lines", type=int, default=200_000, help="lines of it each run reads (its first lines)")
    speed.add_argument("--model", help="a saved pipeline to use instead of training the BiLSTM")
    speed.add_argument("--rounds", type=int, default=1)
    memory = sub.choices["memory"]
    memory.add_argument("--small", type=int, default=50_000)
    memory.add_argument("--large", type=int, default=1_000_000)
    memory.add_argument("--model", choices=("bilstm", "tiny"), default="tiny")
    base = sub.add_parser("baseline")
    base.add_argument("model_dir")
    base.add_argument("input")
    base.add_argument("output")
    args = parser.parse_args(argv)
    if args.command == "baseline":
        print(json.dumps(baseline(args.model_dir, args.input, args.output)))
    elif args.command == "speed":
        cmd_speed(args)
    else:
        cmd_memory(args)


if __name__ == "__main__":
    main()
