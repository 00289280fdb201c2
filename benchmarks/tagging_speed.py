"""Training speed of the tagger with a CRF output next to a softmax output, in tokens per second.

Builds two pipelines from one config that differ only in ``stages.model.output`` (crf /
softmax), fits each for one warm-up epoch (graph tracing included), then alternates timed
epochs between them (so both see the same machine load) and reports real (non-padding) training
tokens per second of each and their ratio. Each timed epoch is clocked from the end of its first
batch (every fit call traces the training graph again in that batch), its tokens scaled to
match. From the repository root::

    python benchmarks/tagging_speed.py conll2003 --sentences 3000 --rounds 2
    python benchmarks/tagging_speed.py resume_ner --sentences 1500 --json-out /tmp/speed.json

Target (from the product issue): the CRF trains at least half as fast as softmax.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tagging_accuracy import CORPORA  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=sorted(CORPORA))
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--config", help="pipeline YAML (default: data/configs/<corpus>.yaml)")
    parser.add_argument("--sentences", type=int, default=3000, help="training sentences per epoch (the first N)")
    parser.add_argument("--rounds", type=int, default=2, help="timed epochs per output kind")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)

    import keras

    from pipeline import Pipeline
    from pipeline.config import apply_overrides, load_yaml

    config_path, train_name, _, _ = CORPORA[args.corpus]
    pipelines = {}
    for output in ("softmax", "crf"):
        config = apply_overrides(load_yaml(os.path.join(ROOT, args.config or config_path)), args.set)
        config["stages"]["model"]["output"] = output
        config.setdefault("training", {}).update(verbose=0, plots=False, checkpoint=False, csv_log=False)
        pipelines[output] = Pipeline.from_config(config)
    corpus = pipelines["crf"].read(os.path.join(args.data_dir, train_name))
    texts, labels = corpus.texts[: args.sentences], corpus.labels[: args.sentences]

    class Clock(keras.callbacks.Callback):
        """Epoch time after its first batch (which includes graph tracing in every fit call)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches == 1:
                self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.t0
            self.share = (self.batches - 1) / self.batches  # of the epoch's tokens, roughly

    tokens = None
    warmup = {}
    for output, p in pipelines.items():
        clock = Clock()
        p.fit(texts, labels, epochs=1, callbacks=[clock])
        warmup[output] = round(clock.seconds, 2)
        if tokens is None:
            tokens = sum(len(s) for s in p.tokenize(texts))
    timed = {output: [] for output in pipelines}
    for _ in range(args.rounds):
        for output, p in pipelines.items():
            clock = Clock()
            p.fit(texts, labels, epochs=1, resume=True, callbacks=[clock])
            timed[output].append(round(clock.seconds / clock.share, 2))
            print(f"{output}: {clock.share * tokens:.0f} tokens in {clock.seconds:.1f}s = {clock.share * tokens / clock.seconds:.0f} tokens/s", flush=True)
    speed = {output: tokens / (sum(t) / len(t)) for output, t in timed.items()}
    ratio = speed["crf"] / speed["softmax"]
    result = {
        "corpus": args.corpus,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "sentences": len(texts),
        "tokens_per_epoch": tokens,
        "warmup_epoch_seconds": warmup,
        "epoch_seconds_without_tracing": timed,
        "tokens_per_second": {k: round(v) for k, v in speed.items()},
        "crf_to_softmax_speed": round(ratio, 3),
        "target_met": ratio >= 0.5,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "keras": keras.__version__,
                    "backend": keras.backend.backend(), "load_average": os.getloadavg()},
    }
    print(f"{args.corpus}: softmax {speed['softmax']:.0f} tokens/s, CRF {speed['crf']:.0f} tokens/s; "
          f"CRF / softmax = {ratio:.2f} (target >= 0.5 {'met' if ratio >= 0.5 else 'NOT met'})")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
