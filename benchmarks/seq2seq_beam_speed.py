"""Batched beam search against the same search run one sentence at a time.

Decodes the same sentences with the same compiled search (beam width 5 by default) twice: in
batches of ``--batch-size`` sentences (each batch one while-loop over time steps, all sentences
and beams advancing together), and one sentence per call. Reports sentences per second for
both, their ratio, and whether the outputs agree. Run from the repository root::

    python benchmarks/seq2seq_beam_speed.py --model saved_models/cmn_en --sentences 300
    python benchmarks/seq2seq_beam_speed.py              # trains the quickstart translator first

Both modes are warmed up first (graph tracing is not timed), then timed ``--repeat`` times,
alternating; the medians are reported, and the fastest run of each mode (``*_best``).
``batch_step_use`` estimates the share of the batched row-steps that sentences needed (a batch
runs until its longest sentence ends). ``--save-outputs`` keeps the batched results, to check
that two versions of the code decode alike (the script runs unchanged against an older
checkout: ``git worktree add``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _step_use(p, ids, tokens, batch_size):
    """Share of the batched search's row-steps that sentences needed: a batch runs until its
    longest best hypothesis ends, so its shorter sentences idle (still computed) meanwhile.
    Lengths are the best hypotheses' (``<eos>`` included); the search may run a little longer
    (until no live hypothesis can still win), so this is an estimate."""
    from stages.batching import length_batches

    eos = p.side("vocabulary", "target").id_of("<eos>")
    lengths = []
    for row in tokens[:, 0]:
        hit = [j for j, t in enumerate(row.tolist()) if t == eos]
        lengths.append(hit[0] + 1 if hit else len(row))
    needed = sum(lengths)
    run = sum(len(index) * max(lengths[i] for i in index) for index in length_batches([len(r) for r in ids], batch_size))
    return round(needed / run, 3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a saved translation pipeline (default: train data/configs/quickstart_translation.yaml)")
    parser.add_argument("--data", help="source sentences: a corpus path read with the pipeline's data options (default: its data.dev)")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each mode (median reported)")
    parser.add_argument("--json-out")
    parser.add_argument("--save-outputs", metavar="NPZ", help="save the batched tokens and scores (to compare two versions of the code)")
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
    ids = p.source_ids(p.tokenize(texts))

    def batched():
        return p.search_ids(ids, beam=args.beam, batch_size=args.batch_size)

    def one_by_one():
        return [p.search_ids([row], beam=args.beam, batch_size=1) for row in ids]

    batched()  # warm-up: traces every padded width
    one_by_one()
    # Alternate the two modes, so that a change in the machine's load hits both alike; report
    # the median of the repeats.
    times_b, times_s = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out_b = batched()
        times_b.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out_s = one_by_one()
        times_s.append(time.perf_counter() - t0)
    t_batched, t_single = statistics.median(times_b), statistics.median(times_s)
    same = sum(
        out_b["tokens"][i, 0].tolist() == out_s[i]["tokens"][0, 0].tolist() for i in range(len(ids))
    )
    report = {
        "model": args.model or "quickstart_translation (trained here)",
        "sentences": len(ids),
        "beam_width": args.beam,
        "batch_size": args.batch_size,
        "repeats": args.repeat,
        "batched_seconds": round(t_batched, 2),
        "one_at_a_time_seconds": round(t_single, 2),
        "batched_seconds_each_repeat": [round(t, 2) for t in times_b],
        "one_at_a_time_seconds_each_repeat": [round(t, 2) for t in times_s],
        "batched_sentences_per_second": round(len(ids) / t_batched, 1),
        "one_at_a_time_sentences_per_second": round(len(ids) / t_single, 1),
        "speedup": round(t_single / t_batched, 1),
        # The least disturbed run of each mode (on a shared machine the medians wander).
        "batched_sentences_per_second_best": round(len(ids) / min(times_b), 1),
        "one_at_a_time_sentences_per_second_best": round(len(ids) / min(times_s), 1),
        "speedup_best": round(min(times_s) / min(times_b), 1),
        "identical_best_hypotheses": f"{same}/{len(ids)}",
        "batch_step_use": _step_use(p, ids, out_b["tokens"], args.batch_size),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "keras_backend": keras.backend.backend()},
    }
    print(json.dumps(report, indent=2))
    if args.save_outputs:
        import numpy as np

        np.savez(args.save_outputs, tokens=out_b["tokens"], scores=out_b["scores"])
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
