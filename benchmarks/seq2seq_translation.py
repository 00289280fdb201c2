"""Dev-set BLEU and perplexity of the translation pipeline on Multi30k (de->en) and cmn_eng (zh->en).

Trains the pipeline of a YAML config on the train split (optionally a subset, optionally under a
wall-clock budget), then decodes the dev split greedily and with beam search and reports
sacrebleu BLEU, perplexity, epoch times and the machine, as text and JSON. Run by hand from the
repository root::

    python benchmarks/seq2seq_translation.py multi30k_de_en
    python benchmarks/seq2seq_translation.py cmn_en --max-minutes 30 --json-out /tmp/cmn.json
    python benchmarks/seq2seq_translation.py multi30k_de_en --max-train 10000 --epochs 3
    python benchmarks/seq2seq_translation.py multi30k_de_en --resume saved_models/m30k --epochs 5 --output saved_models/m30k_more

The corpora are not shipped; the configs read them from ``../shared/data`` (see their comments).
Figures are dev-set figures (the best epoch is chosen on dev loss).
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a config name in data/configs (multi30k_de_en, cmn_en) or a YAML path")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--max-train", type=int, help="train on the first N pairs only")
    parser.add_argument("--max-dev", type=int, help="evaluate on the first N dev pairs only")
    parser.add_argument("--max-minutes", type=float, help="stop training before an epoch that would overrun this wall-clock budget (minutes)")
    parser.add_argument("--beam", type=int, action="append", help="beam widths to evaluate (default: 1 and the config's)")
    parser.add_argument("--resume", metavar="DIR", help="continue training a pipeline saved by an earlier run for --epochs more epochs")
    parser.add_argument("--output", help="save the trained pipeline here")
    parser.add_argument("--json-out", help="write the report as JSON here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)
    import keras

    from benchmarks.epoch_clock import EpochClock
    from pipeline import Pipeline

    path = args.config if args.config.endswith(".yaml") else os.path.join("data", "configs", f"{args.config}.yaml")
    p = Pipeline.load(args.resume) if args.resume else Pipeline.from_yaml(path)
    train, dev = p.read(p.data["train"]), p.read(p.data["dev"])
    src, tgt = train.texts[: args.max_train], train.labels[: args.max_train]
    dsrc, dtgt = dev.texts[: args.max_dev], dev.labels[: args.max_dev]
    print(f"{path}: {len(src)} training pairs, {len(dsrc)} dev pairs", flush=True)

    clock = EpochClock(args.max_minutes, digits=4)
    t0 = time.perf_counter()
    if args.resume:
        # Continue from the saved weights and optimizer state on the same data.
        options = p._options({"epochs": args.epochs})
        tok_s, tok_t = p.tokenize(src), p.tokenize_targets(tgt)
        train = p.batches(tok_s, tok_t, options["batch_size"], seed=options["seed"] + 1, shuffle=True)
        val = p.batches(p.tokenize(dsrc), p.tokenize_targets(dtgt), options["predict_batch_size"])
        p.model.fit(train, validation_data=val, epochs=options["epochs"], callbacks=p._callbacks(options, None, True) + [clock], verbose=options["verbose"])
        p.history_ = p.model.history_
        if args.output:
            p.save(args.output)
    else:
        p.fit(src, tgt, validation_data=(dsrc, dtgt), epochs=args.epochs, output_dir=args.output, callbacks=[clock])
    train_s = time.perf_counter() - t0

    report = {
        "config": path,
        "train_pairs": len(src),
        "dev_pairs": len(dsrc),
        "epochs_run": len(clock.epochs),
        "epoch_seconds": clock.seconds,
        "train_seconds": round(train_s, 1),
        "history": {k: [round(float(x), 4) for x in v] for k, v in p.history_.items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "keras_backend": keras.backend.backend()},
        "dev": {},
    }
    beams = args.beam or sorted({1, p.decoder.beam_width})
    for beam in beams:
        t = time.perf_counter()
        result = p.evaluate(dsrc, dtgt, beam=beam)
        result["decode_seconds"] = round(time.perf_counter() - t, 1)
        report["dev"][f"beam_{beam}"] = result
        print(f"dev beam {beam}: BLEU {result['bleu']:.2f} (cased {result['bleu_cased']:.2f})  perplexity {result['perplexity']:.2f}  "
              f"({result['bleu_signature']}, decoded in {result['decode_seconds']}s)", flush=True)
        for ex in result["samples"][:3]:
            print("   ", ex)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    return report


if __name__ == "__main__":
    main()
