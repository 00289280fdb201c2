"""Start-up cost of ``Pipeline.fit``: the optimizer built before training, or while tracing.

    python benchmarks/fit_startup.py                 # 3 repeats of each case
    python benchmarks/fit_startup.py --repeats 5 --json-out /tmp/fit_startup.json

On tiny data (the test suite's configs: a CRF tagger, a classifier, a translation model;
3 epochs each) nearly all of a fit is TensorFlow tracing the train step. ``RecurrentModel``
builds the optimizer's variables before training; Keras' TensorFlow trainer, left alone,
creates them while tracing the first train step, and a ``tf.function`` that creates variables
is traced twice. Each case is fitted with the pre-build (as shipped) and without it, in
alternating order in the same process, with the same seed; the script prints the median
seconds of each, their ratio, and whether the trained weights are identical (they must be).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


def cases():
    from conftest import ZH_NEG, ZH_POS, tiny_config
    from test_seq2seq import _config as translation_config
    from test_seq2seq import _toy_pairs
    from test_tagging import EN_TAGS, EN_TOKENS, tagging_config

    return {
        "crf_tagger": (tagging_config(), EN_TOKENS * 3, EN_TAGS * 3),
        "classifier": (tiny_config(dropout=0.3), ZH_POS + ZH_NEG, ["pos"] * 6 + ["neg"] * 6),
        "translation": (translation_config(), *_toy_pairs(24)),
    }


def fit_once(config, texts, targets, prebuild: bool):
    """Seconds of one seeded 3-epoch fit, and a digest of the trained weights."""
    import numpy as np

    from pipeline import Pipeline
    from stages.models import RecurrentModel

    shipped = RecurrentModel._build_optimizer
    if not prebuild:
        RecurrentModel._build_optimizer = lambda self: None
    try:
        config = json.loads(json.dumps(config))
        config["training"]["seed"] = 7
        t0 = time.perf_counter()
        p = Pipeline.from_config(config).fit(texts, targets, epochs=3)
        seconds = time.perf_counter() - t0
    finally:
        RecurrentModel._build_optimizer = shipped
    weights = np.concatenate([w.ravel() for w in p.stage("model").model_.get_weights()])
    return seconds, hashlib.md5(weights.tobytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fits per case and setting (default 3)")
    parser.add_argument("--json-out", help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("ktp").setLevel(logging.WARNING)
    rows = {}
    every = cases()
    fit_once(*every["classifier"], prebuild=True)  # warm up: TensorFlow's one-time start-up is not counted
    for name, (config, texts, targets) in every.items():
        times = {True: [], False: []}
        digests = set()
        for i in range(args.repeats):
            for prebuild in ((True, False) if i % 2 == 0 else (False, True)):
                seconds, digest = fit_once(config, texts, targets, prebuild)
                times[prebuild].append(seconds)
                digests.add(digest)
        shipped, keras_default = statistics.median(times[True]), statistics.median(times[False])
        rows[name] = {"prebuilt_s": round(shipped, 2), "traced_s": round(keras_default, 2),
                      "speedup": round(keras_default / shipped, 2), "same_weights": len(digests) == 1}
        print(f"{name}: fit {shipped:.2f} s with the optimizer built first, {keras_default:.2f} s built while "
              f"tracing (median of {args.repeats}): {keras_default / shipped:.2f}x; "
              f"identical weights: {len(digests) == 1}", flush=True)
    report = {"machine": f"{platform.platform()}, {os.cpu_count()} CPUs", "repeats": args.repeats, "cases": rows}
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0 if all(r["same_weights"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
