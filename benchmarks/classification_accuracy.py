"""Dev-set accuracy of the classification pipeline on ChnSentiCorp and SST-2.

Trains the pipeline of a YAML config on a corpus's train split, restoring the weights of the
best dev epoch, and reports dev accuracy, macro-F1, the time of every epoch, the total time and
the machine, as text and as JSON. Run by hand from the repository root::

    python benchmarks/classification_accuracy.py chnsenticorp --data-dir ../shared/data
    python benchmarks/classification_accuracy.py sst2 --epochs 8 --json-out /tmp/sst2.json
    python benchmarks/classification_accuracy.py sst2 --set stages.model.units=64 --set training.batch_size=32

The corpora are not shipped with the project. ChnSentiCorp (``train.tsv`` / ``dev.tsv``,
header ``label<TAB>text_a``) is the ERNIE / PaddleNLP split; SST-2 (``train.txt`` / ``dev.txt``,
``<label> <text>`` lines) is the sentence-level binary split of Kim (2014). Put each in a folder
named ``chnsenticorp`` / ``sst2`` under ``--data-dir``, or give ``--train`` and ``--dev``.

Because the best epoch is picked on dev and dev accuracy is reported, the figures are tuned on
dev (as the corpora's own README asks: tune on train + dev, quote dev figures); they are not
held-out test figures.
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

#: corpus -> (default config, train file, dev file)
CORPORA = {
    "chnsenticorp": ("data/configs/chnsenticorp.yaml", "chnsenticorp/train.tsv", "chnsenticorp/dev.tsv"),
    "sst2": ("data/configs/sst2.yaml", "sst2/train.txt", "sst2/dev.txt"),
}


def parse_args(argv=None):
    from pipeline.cli import add_training_overrides

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=sorted(CORPORA))
    parser.add_argument(
        "--data-dir",
        default=os.path.join(ROOT, "..", "shared", "data"),
        help="folder holding chnsenticorp/ and sst2/ (default: ../shared/data next to the repository)",
    )
    parser.add_argument("--config", help="pipeline YAML (default: data/configs/<corpus>.yaml)")
    parser.add_argument("--train", help="train file (overrides --data-dir)")
    parser.add_argument("--dev", help="dev file (overrides --data-dir)")
    add_training_overrides(parser)
    parser.add_argument("--limit", type=int, help="train on the first N training texts only (smoke runs)")
    parser.add_argument("--json-out", help="also write the JSON report to this file")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity")
    return parser.parse_args(argv)


def machine_info() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    import keras

    info["keras"] = keras.__version__
    info["keras_backend"] = keras.backend.backend()
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["gpus"] = len(tf.config.list_physical_devices("GPU"))
    except ImportError:
        pass
    if info["keras_backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
        info["devices"] = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    return info


def _member_rows(pipeline) -> list[dict]:
    """Each ensemble member's best dev accuracy, its epoch and the epochs it ran."""
    members = []
    for i, h in enumerate(getattr(pipeline, "member_histories_", []) or []):
        accs = h.get("val_accuracy", [])
        if accs:
            best = max(range(len(accs)), key=accs.__getitem__)
            members.append({"member": i + 1, "best_dev_accuracy": round(float(accs[best]), 4), "best_epoch": best + 1, "epochs_run": len(accs)})
    return members


def _load_config(args, config_path):
    from pipeline import Pipeline
    from pipeline.config import apply_overrides, load_yaml

    if args.set:
        return Pipeline.from_config(apply_overrides(load_yaml(config_path), args.set))
    return Pipeline.from_yaml(config_path)


def run(args) -> dict:
    default_config, train_name, dev_name = CORPORA[args.corpus]
    config_path = args.config or os.path.join(ROOT, default_config)
    train_path = args.train or os.path.join(args.data_dir, train_name)
    dev_path = args.dev or os.path.join(args.data_dir, dev_name)
    for path in (train_path, dev_path):
        if not os.path.isfile(path):
            raise SystemExit(
                f"{path} does not exist. Point --data-dir at the folder holding {args.corpus}/ "
                f"(or give --train and --dev); see the module docstring for the expected files."
            )

    pipeline = _load_config(args, config_path)
    config = pipeline.get_config()

    t_start = time.perf_counter()
    machine = machine_info()  # before the run, so the load figure is the load it started under
    train = pipeline.read(train_path)
    dev = pipeline.read(dev_path)
    texts, labels = train.texts, train.labels
    if args.limit:
        texts, labels = texts[: args.limit], labels[: args.limit]
    t_read = time.perf_counter() - t_start

    from benchmarks.epoch_clock import EpochClock

    clock = EpochClock(echo=False)  # every ensemble member's epochs, one after another
    t0 = time.perf_counter()
    pipeline.fit(
        texts,
        labels,
        validation_data=(dev.texts, dev.labels),
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=args.verbose,
        callbacks=[clock],
    )
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = pipeline.evaluate(dev.texts, dev.labels)
    t_eval = time.perf_counter() - t0

    history = pipeline.history_ or {}
    val_acc = history.get("val_accuracy", [])
    best_epoch = (max(range(len(val_acc)), key=val_acc.__getitem__) + 1) if val_acc else None
    vocabulary = pipeline.stage("vocabulary")
    members = _member_rows(pipeline)
    return {
        "corpus": args.corpus,
        "config_path": os.path.relpath(config_path, ROOT),
        "train_path": train_path,
        "dev_path": dev_path,
        "train_examples": len(texts),
        "dev_examples": len(dev.texts),
        "dev_accuracy": round(report["accuracy"], 4),
        "dev_macro_f1": round(report["macro_f1"], 4),
        "dev_confusion_matrix": report.get("confusion_matrix"),
        "labels": report["labels"],
        "best_epoch": best_epoch,
        "ensemble_members": members if len(members) > 1 else None,
        "epochs_run": len(clock.epochs),
        "epoch_times_s": clock.seconds,
        "history": {k: [round(float(v), 4) for v in vals] for k, vals in history.items()},
        "vocabulary_size": len(vocabulary),
        "dev_vocabulary_coverage": round(getattr(pipeline, "dev_coverage_", {}).get("coverage", float("nan")), 4),
        "time_s": {
            "read": round(t_read, 1),
            "fit": round(t_fit, 1),
            "evaluate": round(t_eval, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "overrides": args.set,
        "command_line_options": {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "limit": args.limit},
        "config": config,
        "machine": {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None},
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from pipeline.errors import ConfigError, DataError

    try:
        result = run(args)
    except (ConfigError, DataError) as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    print(
        f"\n{result['corpus']}: dev accuracy {100 * result['dev_accuracy']:.2f} %, "
        f"macro-F1 {100 * result['dev_macro_f1']:.2f} % (best epoch {result['best_epoch']} of {result['epochs_run']})"
    )
    if result["ensemble_members"]:
        print("ensemble members (best dev accuracy, epoch): " + ", ".join(
            f"{100 * m['best_dev_accuracy']:.2f} % ({m['best_epoch']}/{m['epochs_run']})" for m in result["ensemble_members"]))
    print(f"epoch times (s): {result['epoch_times_s']}")
    print(f"total time: {result['time_s']['total']} s (fit {result['time_s']['fit']} s)")
    m = result["machine"]
    print(f"machine: {m.get('cpu_model', '?')}, {m.get('usable_cores', m['cpu_count'])} usable cores, load {m.get('load_average_at_start')}")
    print_report(result, args.json_out)
    return 0


def print_report(result: dict, json_out: str | None) -> None:
    """Print ``result`` as indented JSON, and write it to ``json_out`` too when given."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
