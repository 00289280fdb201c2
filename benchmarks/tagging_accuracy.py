"""Dev-set entity F1 of the tagging pipeline on CoNLL-2003 (English) and Resume NER (Chinese).

Trains the pipeline of a YAML config on the corpus's train split (best dev epoch restored) and
reports dev entity precision / recall / F1 (seqeval rules), per type, token accuracy, the
figures of every epoch, the times and the machine, as text and JSON. From the repository root::

    python benchmarks/tagging_accuracy.py conll2003
    python benchmarks/tagging_accuracy.py resume_ner --max-minutes 60 --json-out /tmp/resume.json
    python benchmarks/tagging_accuracy.py conll2003 --set stages.model.output=softmax --epochs 5

Targets (from the product issue): CoNLL-2003 dev F1 >= 88.0 without pretrained vectors,
Resume NER dev F1 >= 94.0. The best epoch is picked on dev, so these are dev figures (tuned on
dev, as the corpora's README asks), not held-out test figures. ``--max-minutes`` stops after the
epoch that would overrun the budget, judged by the last epoch's time (the best epoch so far is
still restored); the first epoch also compiles every batch shape (on JAX most of a short run),
so after it training stops only once the budget is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CORPORA = {
    "conll2003": ("data/configs/conll2003.yaml", "conll2003/train.txt", "conll2003/valid.txt", 88.0),
    "resume_ner": ("data/configs/resume_ner.yaml", "resume_ner/train.char.bmes", "resume_ner/dev.char.bmes", 94.0),
}


def parse_args(argv=None):
    from pipeline.cli import add_training_overrides

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=sorted(CORPORA))
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"),
                        help="folder holding conll2003/ and resume_ner/ (default: ../shared/data)")
    parser.add_argument("--config", help="pipeline YAML (default: data/configs/<corpus>.yaml)")
    add_training_overrides(parser, seed=False)
    parser.add_argument("--max-minutes", type=float, help="stop after the epoch that would overrun this budget")
    parser.add_argument("--train-limit", type=int, help="train on the first N sentences only (quick checks)")
    parser.add_argument("--output", help="run folder (saved pipeline, history.csv, metrics.json)")
    parser.add_argument("--json-out", help="write the report here as JSON")
    return parser.parse_args(argv)


def jax_devices() -> dict:
    """The JAX version and devices (e.g. ``gpu:NVIDIA H100 80GB HBM3``) when Keras runs on JAX."""
    import keras

    if keras.backend.backend() != "jax":
        return {}
    import jax

    return {"jax": jax.__version__, "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()]}


def main(argv=None) -> int:
    args = parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import keras

    from benchmarks.epoch_clock import EpochClock
    from pipeline import Pipeline
    from pipeline.config import apply_overrides, load_yaml

    config_path, train_name, dev_name, target = CORPORA[args.corpus]
    config = apply_overrides(load_yaml(os.path.join(ROOT, args.config or config_path)), args.set)
    pipeline = Pipeline.from_config(config)
    train = pipeline.read(os.path.join(args.data_dir, train_name))
    dev = pipeline.read(os.path.join(args.data_dir, dev_name))
    texts, labels = train.texts, train.labels
    if args.train_limit:
        texts, labels = texts[: args.train_limit], labels[: args.train_limit]

    clock = EpochClock(args.max_minutes)
    epochs = clock.epochs

    t0 = time.perf_counter()
    pipeline.fit(texts, labels, validation_data=(dev.texts, dev.labels), output_dir=args.output,
                 epochs=args.epochs, batch_size=args.batch_size, callbacks=[clock])
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = pipeline.evaluate(dev.texts, dev.labels)
    eval_seconds = time.perf_counter() - t1
    # The epoch the pipeline restored: the best by training.monitor.
    monitor = pipeline.training["monitor"]
    best = None
    if epochs and any(monitor in e for e in epochs):
        pick = min if monitor == "val_loss" else max
        best = pick((e for e in epochs if monitor in e), key=lambda e: e[monitor])
    result = {
        "corpus": args.corpus,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "config": pipeline.get_config(),
        "train_sentences": len(texts),
        "dev_sentences": len(dev.texts),
        "dev": report,
        "dev_f1_percent": round(100 * report["f1"], 2),
        "target_f1_percent": target,
        "target_met": 100 * report["f1"] >= target,
        "epochs_run": len(epochs),
        "monitor": monitor,
        "best_epoch": best["epoch"] if best else None,
        "epochs": epochs,
        "train_seconds": round(train_seconds, 1),
        "dev_eval_seconds": round(eval_seconds, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "keras": keras.__version__, "backend": keras.backend.backend(), **jax_devices()},
    }
    print(f"{args.corpus}: dev entity F1 {100 * report['f1']:.2f} (P {100 * report['precision']:.2f}, "
          f"R {100 * report['recall']:.2f}), token accuracy {100 * report['accuracy']:.2f}; target {target} "
          f"{'met' if result['target_met'] else 'NOT met'}; {len(epochs)} epochs (best by {monitor}: "
          f"{result['best_epoch']}) in {train_seconds / 60:.1f} min")
    for type_, row in report["per_type"].items():
        print(f"  {type_:<8} P {100 * row['precision']:6.2f}  R {100 * row['recall']:6.2f}  F1 {100 * row['f1']:6.2f}  support {row['support']}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
