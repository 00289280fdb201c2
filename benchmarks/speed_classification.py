"""Speed benchmarks of the classification foundation, each against a baseline in the same run.

1. fit: ``Pipeline.fit`` seconds per epoch vs a hand-written Keras script training the same model
   (same layers, optimizer, batch size) on the same integer arrays. Target: ratio <= 1.10.
2. lookup: token -> id throughput of ``Vocabulary.transform`` vs ``keras.layers.StringLookup`` on the
   same tokens. Target: ratio >= 1.0.

Runs alternate (A, B, A, B, ...) so machine noise hits both sides alike; medians are reported.

Usage:
    python benchmarks/speed_classification.py [--data ../shared/data/chnsenticorp/train.tsv] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_texts(path, limit):
    from pipeline.readers import read_corpus

    corpus = read_corpus(path, {"format": "tsv", "text_column": "text_a", "label_column": "label"})
    return corpus.texts[:limit], corpus.labels[:limit]


def config(epochs):
    return {
        "stages": {
            "tokenizer": {"type": "jieba"},
            "vocabulary": {"max_size": 30000, "min_freq": 2},
            "vectorizer": {"type": "embedding", "dim": 128, "max_length": 128},
            "model": {"type": "rnn_classifier", "cell": "gru", "units": 64, "bidirectional": True, "pooling": "max"},
            "decoder": {"type": "label"},
        },
        "training": {"epochs": epochs, "batch_size": 64, "verbose": 0, "checkpoint": False, "csv_log": False, "plots": False},
    }


class EpochTimer:
    def __init__(self):
        import keras

        class _CB(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.t = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                self.times.append(time.perf_counter() - cb.t)

        self.times = []
        self.callback = _CB()


def bench_fit(texts, labels, epochs, repeats):
    import keras

    from pipeline import Pipeline

    pipeline_times, keras_times = [], []
    for r in range(repeats):
        # --- Pipeline.fit (epoch times from Keras history timing via a callback on the model) ---
        p = Pipeline.from_config(config(epochs))
        timer = EpochTimer()
        original = p._callbacks

        def with_timer(*a, **k):
            return original(*a, **k) + [timer.callback]

        p._callbacks = with_timer
        p.fit(texts, labels, seed=r)
        # Skip the first epoch (graph tracing) and keep the steady-state median.
        pipeline_times.append(statistics.median(timer.times[1:]))

        # --- hand-written Keras on the same arrays ---
        x = p.encode(texts)
        y = p.stage("decoder").encode(labels)
        vocab = len(p.stage("vocabulary"))
        keras.utils.set_random_seed(r)
        inp = keras.Input(shape=(None,), dtype="int32")
        h = keras.layers.Embedding(vocab, 128, mask_zero=True)(inp)
        h = keras.layers.Bidirectional(keras.layers.GRU(64, return_sequences=True, dropout=0.2, recurrent_initializer="orthogonal"))(h)
        from stages.layers import MaskedPooling

        h = MaskedPooling("max")(h)
        h = keras.layers.Dropout(0.2)(h)
        out = keras.layers.Dense(len(set(labels)), activation="softmax")(h)
        model = keras.Model(inp, out)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=5.0), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        timer = EpochTimer()
        model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=[timer.callback])
        keras_times.append(statistics.median(timer.times[1:]))
        print(f"  fit repeat {r + 1}: pipeline {pipeline_times[-1]:.2f}s/epoch, keras {keras_times[-1]:.2f}s/epoch", flush=True)
    p_med, k_med = statistics.median(pipeline_times), statistics.median(keras_times)
    return {"pipeline_s_per_epoch": p_med, "keras_s_per_epoch": k_med, "ratio": p_med / k_med,
            "pipeline_runs": pipeline_times, "keras_runs": keras_times, "examples": len(texts), "epochs": epochs}


def bench_lookup(texts, repeats):
    import keras
    import tensorflow as tf

    from stages.tokenizers import JiebaTokenizer
    from stages.vocabulary import Vocabulary

    tokens = JiebaTokenizer().transform(texts)
    n_tokens = sum(map(len, tokens))
    vocab = Vocabulary(max_size=30000).fit(tokens)
    lookup = keras.layers.StringLookup(vocabulary=vocab.tokens_[2:], num_oov_indices=1, mask_token=None)
    ours, theirs, lookup_only = [], [], []
    flat = tf.constant([t for toks in tokens for t in toks])
    for _ in range(repeats):
        t = time.perf_counter()
        vocab.transform(tokens)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        # StringLookup needs a tensor: the ragged conversion is part of using it on token lists.
        ragged = tf.ragged.constant(tokens)
        lookup(ragged)
        theirs.append(time.perf_counter() - t)
        # For reference: the hash lookup alone on a flat tensor that already exists.
        t = time.perf_counter()
        lookup(flat)
        lookup_only.append(time.perf_counter() - t)
    o, s, f = statistics.median(ours), statistics.median(theirs), statistics.median(lookup_only)
    return {"tokens": n_tokens, "vocabulary_tokens_per_s": n_tokens / o, "stringlookup_tokens_per_s": n_tokens / s,
            "ratio": s / o, "stringlookup_on_prebuilt_tensor_tokens_per_s": n_tokens / f,
            "vocabulary_s": ours, "stringlookup_s": theirs, "stringlookup_prebuilt_s": lookup_only}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "chnsenticorp", "train.tsv"))
    ap.add_argument("--limit", type=int, default=3000, help="training texts used for the fit benchmark")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["fit", "lookup"])
    args = ap.parse_args()
    texts, labels = load_texts(args.data, None)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    if args.only in (None, "lookup"):
        result["lookup"] = bench_lookup(texts, args.repeats)
        print(f"lookup: Vocabulary {result['lookup']['vocabulary_tokens_per_s']:.0f} tok/s, StringLookup "
              f"{result['lookup']['stringlookup_tokens_per_s']:.0f} tok/s (from token lists), ratio {result['lookup']['ratio']:.2f}x; "
              f"StringLookup on a pre-built flat tensor {result['lookup']['stringlookup_on_prebuilt_tensor_tokens_per_s']:.0f} tok/s", flush=True)
    if args.only in (None, "fit"):
        result["fit"] = bench_fit(texts[: args.limit], labels[: args.limit], args.epochs, args.repeats)
        print(f"fit: pipeline {result['fit']['pipeline_s_per_epoch']:.2f}s/epoch vs keras {result['fit']['keras_s_per_epoch']:.2f}s/epoch, "
              f"ratio {result['fit']['ratio']:.3f}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
