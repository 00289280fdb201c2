"""Batched beam search against the same search run one sentence at a time.

Decodes the same sentences with the same compiled search (beam width 5 by default) twice: in
batches of ``--batch-size`` sentences (each batch one while-loop over time steps, all sentences
and beams advancing together), and one sentence per call. Reports sentences per second for
both, their ratio, and whether the outputs agree. Run from the repository root::

    python benchmarks/seq2seq_beam_speed.py --model saved_models/cmn_en --sentences 300
    python benchmarks/seq2seq_beam_speed.py              # trains the quickstart translator first

Both modes are warmed up first (graph tracing is not timed).
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a saved translation pipeline (default: train data/configs/quickstart_translation.yaml)")
    parser.add_argument("--data", help="source sentences: a corpus path read with the pipeline's data options (default: its data.dev)")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    import keras

    from pipeline import Pipeline

    if args.model:
        p = Pipeline.load(args.model)
    else:
        p = Pipeline.from_yaml("data/configs/quickstart_translation.yaml")
        train = p.read(p.data["train"])
        p.fit(train.texts, train.labels, epochs=30, verbose=0)
    corpus = p.read(args.data or p.data["dev"], need_targets=False)
    texts = (corpus.texts * (args.sentences // len(corpus.texts) + 1))[: args.sentences]
    ids = p._source_ids(p.tokenize(texts))

    def batched():
        return p.search_ids(ids, beam=args.beam, batch_size=args.batch_size)

    def one_by_one():
        return [p.search_ids([row], beam=args.beam, batch_size=1) for row in ids]

    batched()  # warm-up: traces every padded width
    one_by_one()
    t0 = time.perf_counter()
    out_b = batched()
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    out_s = one_by_one()
    t_single = time.perf_counter() - t0
    same = sum(
        out_b["tokens"][i, 0].tolist() == out_s[i]["tokens"][0, 0].tolist() for i in range(len(ids))
    )
    report = {
        "model": args.model or "quickstart_translation (trained here)",
        "sentences": len(ids),
        "beam_width": args.beam,
        "batch_size": args.batch_size,
        "batched_seconds": round(t_batched, 2),
        "one_at_a_time_seconds": round(t_single, 2),
        "batched_sentences_per_second": round(len(ids) / t_batched, 1),
        "one_at_a_time_sentences_per_second": round(len(ids) / t_single, 1),
        "speedup": round(t_single / t_batched, 1),
        "identical_best_hypotheses": f"{same}/{len(ids)}",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "keras_backend": keras.backend.backend()},
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
