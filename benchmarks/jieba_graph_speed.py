"""Speed of the in-graph jieba segmenter (pipeline/export/jieba_graph/) against jieba itself.

Characters per second of ``GraphJieba.segment`` in a ``tf.function`` with an input signature
(traced and warmed up first) and of ``jieba.Tokenizer.cut`` in Python, on the same ChnSentiCorp
reviews, at batch 1 and batch 256; medians over a few repeats. Also the size of a SavedModel that
holds only the segmenter, and how long ``tf.saved_model.load`` takes in this process.

    python benchmarks/jieba_graph_speed.py [--data-dir ../shared/data] [--texts 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def read_texts(data_dir: Path, limit: int) -> list[str]:
    path = data_dir / "chnsenticorp" / "train.tsv"
    if not path.is_file():
        sys.exit(f"missing {path}: pass --data-dir")
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t", 1)[1] for line in lines[:limit]]


def time_python(tokenizer, texts, hmm, repeats):
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for text in texts:
            list(tokenizer.cut(text, HMM=hmm))
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def time_graph(fn, texts, batch, repeats):
    import tensorflow as tf

    batches = [tf.constant(texts[i:i + batch]) for i in range(0, len(texts), batch)]
    fn(batches[0])  # warm-up beyond the trace
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            words = fn(b)
            words.flat_values.numpy()  # force the result out, as a caller would
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def saved_model_figures(segmenter):
    import tensorflow as tf

    module = tf.Module()
    for name, resource in segmenter.trackables().items():
        setattr(module, name, resource)
    module.segment = tf.function(lambda t: segmenter.segment(t)[0],
                                 input_signature=[tf.TensorSpec([None], tf.string)],
                                 autograph=False)
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        start = time.perf_counter()
        loaded = tf.saved_model.load(tmp)
        loaded.segment(tf.constant(["我来到北京清华大学"]))
        load_s = time.perf_counter() - start
    return size, load_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder with chnsenticorp/train.tsv (default: ../shared/data)")
    parser.add_argument("--texts", type=int, default=2048, help="number of reviews timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--batch1-texts", type=int, default=256,
                        help="reviews timed one by one at batch 1")
    args = parser.parse_args(argv)

    import jieba
    import tensorflow as tf

    from pipeline.export import jieba_graph as jg

    jieba.setLogLevel(60)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    texts = read_texts(args.data_dir, args.texts)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), "
          f"TensorFlow {tf.__version__}, jieba {jieba.__version__}")
    print(f"texts: {len(texts)} ChnSentiCorp reviews, mean "
          f"{sum(map(len, texts)) / len(texts):.0f} chars; medians of {args.repeats} repeats\n")
    print(f"{'mode':<10}{'batch':>6}{'graph chars/s':>15}{'jieba chars/s':>15}{'graph/jieba':>13}")
    for hmm in (True, False):
        segmenter = jg.GraphJieba(tokenizer, hmm=hmm)
        fn = tf.function(lambda t, s=segmenter: s(t),
                         input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        for batch in (1, 256):
            subset = texts[:args.batch1_texts] if batch == 1 else texts
            chars = sum(map(len, subset))
            graph = chars / time_graph(fn, subset, batch, args.repeats)
            python = chars / time_python(tokenizer, subset, hmm, args.repeats)
            name = "HMM on" if hmm else "HMM off"
            print(f"{name:<10}{batch:>6}{graph:>15,.0f}{python:>15,.0f}{graph / python:>13.2f}")
    size, load_s = saved_model_figures(jg.GraphJieba(tokenizer, hmm=True))
    print(f"\nSavedModel with only the segmenter: {size / 2**20:.1f} MiB, "
          f"tf.saved_model.load + first call: {load_s:.2f} s")


if __name__ == "__main__":
    main()
