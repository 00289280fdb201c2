"""Raw-text serving: SavedModel vs Python agreement on real dev sets, latency, size and load time.

Three measurements, run by hand from the repository root (2-core CPU machine unless stated):

    # 1. Agreement: train the corpus's shipped config (briefly: --epochs, default 1), export it,
    #    feed the SavedModel the RAW dev texts and compare every answer with Pipeline.predict.
    python benchmarks/serving.py parity chnsenticorp
    python benchmarks/serving.py parity resume_ner --epochs 2 --json-out /tmp/resume_parity.json
    python benchmarks/serving.py parity sst2 --model saved_models/sst2      # an already trained pipeline

    # 2. Latency of serving_default (batch 1 and 64) against Pipeline.predict on the same texts,
    #    p50 / p99 over --rounds calls, plus the SavedModel's size on disk and load time.
    python benchmarks/serving.py latency saved_models/chnsenticorp --data ../shared/data/chnsenticorp/dev.tsv

Corpora (``--data-dir``, default ``../shared/data``): chnsenticorp, sst2, conll2003, resume_ner,
cmn_eng (zh -> en), multi30k (de -> en). Agreement is exact equality of labels (and scores within
1e-5), of entity spans (type, start, end at character offsets of the raw text) and tags, or of
translated token sequences (scores within 1e-4). The model need not be good for this check, but
a model that always answers the same is a weak one: the report gives the dev figure and how many
distinct answers the model gave, so a reader can judge.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import classification_accuracy  # noqa: E402
import tagging_accuracy  # noqa: E402

#: corpus -> (config, train file, dev file): the accuracy benchmarks' corpora and the translation pairs
CORPORA = {
    **classification_accuracy.CORPORA,
    **{name: spec[:3] for name, spec in tagging_accuracy.CORPORA.items()},
    "cmn_eng": ("data/configs/cmn_en.yaml", "cmn_eng/train.tsv", "cmn_eng/dev.tsv"),
    "multi30k": ("data/configs/multi30k_de_en.yaml", "multi30k/train", "multi30k/val"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parity", help="SavedModel fed raw dev text vs Pipeline.predict")
    p.add_argument("corpus", choices=sorted(CORPORA))
    p.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--model", help="a trained saved pipeline to use instead of training one")
    p.add_argument("--epochs", type=int, default=1, help="training epochs (default 1: agreement needs a trained, not a good, model)")
    p.add_argument("--train-limit", type=int, help="train on the first N examples only")
    p.add_argument("--dev-limit", type=int, help="compare on the first N dev examples only")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a config option (YAML value)")
    p.add_argument("--batch-size", type=int, default=256, help="texts per SavedModel call")
    p.add_argument("--json-out")
    p = sub.add_parser("latency", help="serving latency, size and load time of an exported pipeline")
    p.add_argument("model", help="a saved pipeline folder (exported to MODEL/saved_model first if it has none)")
    p.add_argument("--data", required=True, help="texts in the pipeline's data format")
    p.add_argument("--rounds", type=int, default=200, help="calls per measurement (default 200)")
    p.add_argument("--json-out")
    return parser.parse_args(argv)


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _raw_texts(pipeline, texts) -> list[str]:
    """Dev inputs as raw strings: token lists are joined as the tagger joins them."""
    sep = "" if pipeline.data.get("format") == "char" else " "
    return [t if isinstance(t, str) else sep.join(t) for t in texts]


def _train(args, config_path, train_path, dev_path):
    from pipeline import Pipeline
    from pipeline.config import apply_overrides, load_yaml

    config = apply_overrides(load_yaml(os.path.join(ROOT, config_path)), args.set)
    config.setdefault("training", {}).update(epochs=args.epochs, verbose=2, plots=False, checkpoint=False, csv_log=False)
    p = Pipeline.from_config(config)
    train = p.read(train_path)
    texts, labels = train.texts, train.labels
    if args.train_limit:
        texts, labels = texts[: args.train_limit], labels[: args.train_limit] if labels is not None else None
    dev = p.read(dev_path)
    t0 = time.perf_counter()
    p.fit(texts, labels, validation_data=(dev.texts, dev.labels))
    return p, time.perf_counter() - t0


def _compare(pipeline, out, raw, batch_answers) -> tuple[int, list]:
    """Number of texts whose SavedModel answer equals Python's, and the first differences."""
    task, same, diffs = pipeline.task, 0, []
    for i, (text, want) in enumerate(zip(raw, batch_answers)):
        if task == "classification":
            ok = out["label"][i].decode() == want["label"] and abs(float(out["score"][i]) - want["score"]) <= 1e-5
            got = out["label"][i].decode()
        elif task == "tagging":
            m = int(out["num_entities"][i])
            got = [(out["entity_type"][i][j].decode(), int(out["entity_start"][i][j]), int(out["entity_end"][i][j])) for j in range(m)]
            ok = got == [(e["type"], e["start"], e["end"]) for e in want["entities"]]
            if ok and "tags" in want:
                n = int(out["lengths"][i])
                ok = [t.decode() for t in out["tags"][i][:n]] == want["tags"]
        else:
            got = [t.decode() for t in out["target_tokens"][i] if t]
            ok = got == want["tokens"] and abs(float(out["score"][i]) - want["score"]) <= 1e-4
        same += ok
        if not ok and len(diffs) < 5:
            diffs.append({"index": i, "text": text[:80], "saved_model": str(got)[:200], "python": str(want)[:200]})
    return same, diffs


def _distinct(pipeline, answers) -> int:
    if pipeline.task == "classification":
        return len({a["label"] for a in answers})
    if pipeline.task == "tagging":
        return len({e["type"] for a in answers for e in a["entities"]})
    return len({tuple(a["tokens"]) for a in answers})


def parity(args) -> dict:
    import numpy as np
    import tensorflow as tf

    from pipeline import Pipeline

    config_path, train_name, dev_name = CORPORA[args.corpus]
    train_path, dev_path = (os.path.join(args.data_dir, n) for n in (train_name, dev_name))
    train_seconds = None
    if args.model:
        p = Pipeline.load(args.model)
    else:
        p, train_seconds = _train(args, config_path, train_path, dev_path)
    dev = p.read(dev_path)
    raw = _raw_texts(p, dev.texts[: args.dev_limit] if args.dev_limit else dev.texts)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = p.export(os.path.join(tmp, "sm"))
        export_seconds = time.perf_counter() - t0
        loaded = tf.saved_model.load(os.path.join(tmp, "sm"))
        serve = loaded.signatures["serving_default"]
        same, diffs, python_seconds, graph_seconds, distinct = 0, [], 0.0, 0.0, set()
        for start in range(0, len(raw), args.batch_size):
            batch = raw[start: start + args.batch_size]
            t0 = time.perf_counter()
            answers = p.predict(batch)
            python_seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            out = {k: v.numpy() for k, v in serve(text=tf.constant(batch)).items()}
            graph_seconds += time.perf_counter() - t0
            n, d = _compare(p, out, batch, answers)
            same += n
            diffs += [dict(x, index=x["index"] + start) for x in d][: max(0, 5 - len(diffs))]
            distinct.add(_distinct(p, answers))
    dev_figure = p.evaluate(dev.texts[: len(raw)], dev.labels[: len(raw)]) if dev.labels is not None else {}
    headline = {k: dev_figure[k] for k in ("accuracy", "f1", "bleu") if isinstance(dev_figure.get(k), (int, float))}
    return {
        "corpus": args.corpus, "task": p.task, "texts": len(raw), "identical": same,
        "agreement": same / len(raw) if raw else 1.0, "differences": diffs,
        "dev": headline, "max_distinct_answers_in_a_batch": max(distinct or {0}),
        "characters": int(np.sum([len(t) for t in raw])), "train_seconds": train_seconds, "export_seconds": export_seconds,
        "golden_check_samples": report["n_samples"], "python_seconds": python_seconds, "saved_model_seconds": graph_seconds,
        "tokenizer": p.get_config()["stages"].get("tokenizer", p.get_config()["stages"].get("source_tokenizer")),
        "machine": machine(),
    }


def _folder_size(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _percentiles(times) -> dict:
    times = sorted(times)
    return {"p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))]}


def latency(args) -> dict:
    import subprocess

    import tensorflow as tf

    from pipeline import Pipeline

    p = Pipeline.load(args.model)
    sm = os.path.join(args.model, "saved_model")
    if not os.path.isfile(os.path.join(sm, "saved_model.pb")):
        p.export(sm)
    texts = _raw_texts(p, p.read(args.data).texts)
    # Load time in a fresh process that imports only TensorFlow (median of 3).
    loads = []
    for _ in range(3):
        code = ("import time, tensorflow as tf; t = time.perf_counter(); tf.saved_model.load(%r); print(time.perf_counter() - t)" % sm)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        loads.append(float(out.stdout.strip().splitlines()[-1]))
    serve = tf.saved_model.load(sm).signatures["serving_default"]
    result = {"model": args.model, "texts": len(texts), "saved_model_bytes": _folder_size(sm),
              "load_seconds_median": statistics.median(loads), "machine": machine()}
    for batch in (1, 64):
        batches = [texts[(i * batch) % len(texts):][:batch] or texts[:batch] for i in range(args.rounds)]
        serve(text=tf.constant(batches[0]))  # warm up (tracing of the loaded function)
        p.predict(batches[0])
        graph, python = [], []
        for b in batches:  # interleaved, so load changes hit both alike
            t0 = time.perf_counter()
            serve(text=tf.constant(b))
            graph.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            p.predict(b)
            python.append(time.perf_counter() - t0)
        result[f"batch_{batch}"] = {"saved_model": _percentiles(graph), "python_predict": _percentiles(python),
                                    "p50_ratio_python_over_saved_model": statistics.median(python) / statistics.median(graph)}
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    result = parity(args) if args.command == "parity" else latency(args)
    classification_accuracy.print_report(result, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
