"""Linear baselines beside the pipeline: dev figures and a test estimate carved from train.

For each corpus a linear model is trained on the same data as the pipeline and scored on dev
and on a test estimate that neither side ever tunes on. From the repository root::

    python benchmarks/baselines.py --corpus sst2
    python benchmarks/baselines.py --corpus chnsenticorp --json /tmp/chnsenticorp_baselines.json
    python benchmarks/baselines.py --corpus conll2003
    python benchmarks/baselines.py --corpus sst2 --pipeline data/configs/sst2.yaml --set stages.model.ensemble=1
    python benchmarks/baselines.py --corpus sst2 --pipeline-model runs/sst2_on_90pc
    python benchmarks/baselines.py --corpus sst2 --pipeline data/configs/sst2.yaml --fuse
    python benchmarks/baselines.py --corpus chnsenticorp --test-fraction 0 --pipeline data/configs/chnsenticorp.yaml

The shared corpora hold train and dev only, and every dev figure of the project is tuned on dev
(best epoch, here C). So ``carve_test`` sets aside a fixed, seeded share of train (10 %,
``--seed 13``; stratified by label for classification, whole documents for CoNLL-2003, whose
sentences of one story share names) as a test estimate; the baselines and
``--pipeline`` train on the other 90 %, pick C / the best epoch on dev and report dev and the
carved test side by side. ``--pipeline-model`` scores a pipeline saved elsewhere: its carved
test figure is held out only if it was trained on the same 90 % (``--save-pipeline`` keeps the
one ``--pipeline`` trains, for that).
``--fuse`` (classification) adds a row for a mix of the pipeline's probabilities and the
SVM's decision values, the weight picked on dev (``late_fusion``).
``--test-fraction 0`` carves nothing: both sides train on all of train, as the configs' own
benchmarks do, and only dev is reported (the setting of the README results table, whose
baseline column comes from such runs).

Baselines (scikit-learn, ``pip install -e ".[baselines]"``):

- ``sst2``: TF-IDF of word 1-2-grams (the PTB tokens as given) and char 2-5-grams
  (sublinear tf), LinearSVC with C picked on dev from ``--c-grid``.
- ``chnsenticorp``: the same with char 1-4-grams and jieba (accurate mode) word 1-2-grams, on
  NFKC-normalised, lower-cased text (what ``chnsenticorp.yaml``'s tokenizer does).
- ``conll2003``: a linear-chain CRF (sklearn-crfsuite, L-BFGS, c1 0.1, c2 picked on dev from
  ``--crf-c2-grid``) over word features: the lower-cased word, its prefixes / suffixes,
  case and shape, and the same for the words either side. No POS or chunk columns (the
  pipeline does not read them either). Entity F1 by ``pipeline.tagging_metrics.tags_report``
  (conlleval / seqeval rules), checked against seqeval when it is installed.
- ``trec``: a hook only. The shared data has no TREC question set; put ``trec/train.txt`` and
  ``trec/dev.txt`` (``<label> <text>`` lines) under ``--data-dir`` and the SST-2 baseline runs on
  them. Without the files it is reported as skipped, never faked.

Fit seconds are the wall time of training including the tuning on dev (every C of the grid, or
every epoch with its dev evaluation), on whatever machine runs it; reading the corpora and
importing TensorFlow are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import time
import unicodedata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: corpus -> task, train / dev files under --data-dir, the shipped config whose ``data`` section
#: reads them (the pipeline's own reader options), and the baseline's settings.
CORPORA = {
    "sst2": {
        "task": "classification", "train": "sst2/train.txt", "dev": "sst2/dev.txt", "config": "data/configs/sst2.yaml",
        "features": {"word_ngrams": (1, 2), "char_ngrams": (2, 5), "words": "space", "normalize": False},
    },
    "chnsenticorp": {
        "task": "classification", "train": "chnsenticorp/train.tsv", "dev": "chnsenticorp/dev.tsv",
        "config": "data/configs/chnsenticorp.yaml",
        "features": {"word_ngrams": (1, 2), "char_ngrams": (1, 4), "words": "jieba", "normalize": True},
    },
    "conll2003": {
        "task": "tagging", "train": "conll2003/train.txt", "dev": "conll2003/valid.txt", "config": "data/configs/conll2003.yaml",
    },
    # Hook: no TREC corpus in ../shared/data. With trec/train.txt and trec/dev.txt there
    # (`<label> <text>` lines, e.g. `DESC how did serfdom develop in and then leave russia ?`),
    # the SST-2 features apply as they are.
    "trec": {
        "task": "classification", "train": "trec/train.txt", "dev": "trec/dev.txt", "config": None,
        "data": {"format": "fasttext", "label_prefix": ""},
        "features": {"word_ngrams": (1, 2), "char_ngrams": (2, 5), "words": "space", "normalize": False},
    },
}
DEFAULT_CORPORA = ("sst2", "chnsenticorp", "conll2003")
INSTALL_HINT = 'pip install -e ".[baselines]"'


# -- the carved test estimate -------------------------------------------------------------------
def carve_test(n: int, fraction: float = 0.1, seed: int = 13, labels=None, groups=None) -> tuple[list[int], list[int]]:
    """Split the indices ``0..n-1`` of a training set into the part to train on and a test estimate.

    The same arguments always give the same split, in any process. The test part holds
    ``round(fraction * n)`` indices. With ``labels`` the split is stratified: each label gives
    its share of them (largest remainders first), so the label mix of both parts follows the
    whole. With ``groups`` whole groups (documents) go to one side or the other, in a shuffled
    order, until the test part holds at least ``round(fraction * n)`` indices, so that
    sentences of one document never land on both sides.

    Args:
        n: the number of training examples.
        fraction: the share that goes to the test estimate, strictly between 0 and 1.
        seed: seed of the shuffle.
        labels: one hashable label per example, to stratify by; None for a plain random split.
        groups: one hashable group id per example, kept together; not with ``labels``.

    Returns:
        ``(keep, test)``: disjoint sorted index lists that together cover ``range(n)``.

    Example:
        >>> keep, test = carve_test(20, 0.1, seed=13)
        >>> len(keep), len(test), sorted(keep + test) == list(range(20))
        (18, 2, True)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (a split needs two examples). Received: n={n!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number strictly between 0 and 1. Received: fraction={fraction!r}")
    for name, values in (("labels", labels), ("groups", groups)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} must hold one value per example: got {len(values)} for n={n}")
    if labels is not None and groups is not None:
        raise ValueError("give labels (to stratify) or groups (to keep together), not both")
    size = min(max(round(fraction * n), 1), n - 1)
    rng = random.Random(seed)
    if groups is not None:
        members: dict = {}
        for i, group in enumerate(groups):
            members.setdefault(group, []).append(i)
        keys = sorted(members, key=repr)
        rng.shuffle(keys)
        test = []
        for k in keys:
            if len(test) >= size:
                break
            test += members[k]
        if len(test) == n:
            raise ValueError(f"groups leave nothing to train on: {len(keys)} group(s) for fraction={fraction}")
    elif labels is None:
        order = list(range(n))
        rng.shuffle(order)
        test = order[:size]
    else:
        groups: dict = {}
        for i, label in enumerate(labels):
            groups.setdefault(label, []).append(i)
        # Sorted by the label's text so that the order of the file does not change the split.
        keys = sorted(groups, key=repr)
        quotas = {k: size * len(groups[k]) / n for k in keys}
        take = {k: int(quotas[k]) for k in keys}
        for k in sorted(keys, key=lambda k: quotas[k] - take[k], reverse=True)[: size - sum(take.values())]:
            take[k] += 1
        test = []
        for k in keys:
            members = list(groups[k])
            rng.shuffle(members)
            test += members[: take[k]]
    chosen = set(test)
    return [i for i in range(n) if i not in chosen], sorted(test)


def _subset(items, indices):
    return [items[i] for i in indices]


# -- the classification baseline ------------------------------------------------------------------
def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _word_tokenizer(kind: str):
    if kind == "space":
        return str.split
    if kind == "jieba":
        import jieba

        jieba.setLogLevel(60)

        def jieba_words(text):
            return [w for w in jieba.lcut(text) if w.strip()]

        return jieba_words
    raise ValueError(f"words must be 'space' or 'jieba'. Received: words={kind!r}")


def tfidf_svc(train, dev, test, c_grid=(0.03, 0.1, 0.3, 1.0, 3.0), word_ngrams=(1, 2), char_ngrams=(2, 5),
              words: str = "space", normalize: bool = False) -> dict:
    """TF-IDF word + char n-grams and a LinearSVC whose C is picked on dev.

    Args:
        train: ``(texts, labels)`` to train on.
        dev: ``(texts, labels)`` to pick C on (the first C of ``c_grid`` wins a tie).
        test: ``(texts, labels)`` scored once, with the chosen C.
        c_grid: the C values to try.
        word_ngrams: ``(min_n, max_n)`` of the word n-grams.
        char_ngrams: ``(min_n, max_n)`` of the character n-grams (``analyzer="char"``).
        words: ``"space"`` (the text is tokenized already) or ``"jieba"``.
        normalize: NFKC-normalise and lower-case the text first.

    Returns:
        ``dev`` and ``test`` accuracy, the chosen ``C``, ``dev_by_C``, ``features`` (the vocabulary
        size), ``fit_seconds`` (vectorizing train and dev plus every C of the grid) and
        ``_scores`` (the chosen model's classes and decision values on dev and test, for
        ``late_fusion``).

    Example:
        >>> tr = (["good fun", "bad film", "fun good", "film bad"], ["1", "0", "1", "0"])
        >>> tfidf_svc(tr, tr, tr, c_grid=(1.0,))["dev"]
        1.0
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion
    from sklearn.svm import LinearSVC

    prepare = _normalize if normalize else (lambda text: text)
    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = (
        ([prepare(t) for t in texts], np.asarray(labels, dtype=object).astype(str)) for texts, labels in (train, dev, test)
    )
    has_test = len(x_test) > 0  # no test with --test-fraction 0
    union = FeatureUnion([
        ("words", TfidfVectorizer(tokenizer=_word_tokenizer(words), token_pattern=None, lowercase=False,
                                  ngram_range=tuple(word_ngrams), sublinear_tf=True)),
        ("chars", TfidfVectorizer(analyzer="char", lowercase=False, ngram_range=tuple(char_ngrams), sublinear_tf=True)),
    ])
    t0 = time.perf_counter()
    m_train = union.fit_transform(x_train)
    m_dev = union.transform(x_dev)
    best, dev_by_c = None, {}
    for c in c_grid:
        model = LinearSVC(C=c).fit(m_train, y_train)
        dev_by_c[c] = float((model.predict(m_dev) == y_dev).mean())
        if best is None or dev_by_c[c] > dev_by_c[best[0]]:
            best = (c, model)
    fit_seconds = time.perf_counter() - t0
    c, model = best
    m_test = union.transform(x_test) if has_test else None
    return {
        "dev": dev_by_c[c],
        "test": float((model.predict(m_test) == y_test).mean()) if has_test else None,
        "C": c,
        "dev_by_C": {str(k): round(v, 4) for k, v in dev_by_c.items()},
        "features": int(m_train.shape[1]),
        "fit_seconds": fit_seconds,
        # for --fuse (dropped before the rows are printed or written)
        "_scores": {"classes": [str(k) for k in model.classes_],
                    "dev": _class_scores(model.decision_function(m_dev)),
                    "test": _class_scores(model.decision_function(m_test)) if has_test else None},
    }


def _class_scores(decision):
    """LinearSVC's decision values as one column per class (a binary model gives one column)."""
    import numpy as np

    decision = np.asarray(decision, dtype="float64")
    return np.stack([-decision, decision], axis=1) if decision.ndim == 1 else decision


def late_fusion(svc_scores: dict, pipeline_scores: dict, y_dev, y_test, temperatures=(1, 2, 4, 8), steps: int = 10) -> dict:
    """Mix the pipeline's class probabilities with the LinearSVC's, the weight picked on dev.

    The SVM's decision values become probabilities by a softmax at temperature ``t``; the mix is
    ``(1 - w) * log p_pipeline + w * log p_svm``. ``w`` (0, 0.1, ..., 1) and ``t`` are chosen by
    dev accuracy (the first of a tie, so w = 0, the pipeline alone, wins ties), then the carved
    test is scored once. Both score sets must list the same classes.

    Example:
        >>> import numpy as np
        >>> svc = {"classes": ["0", "1"], "dev": np.array([[-1., 1.], [1., -1.]]), "test": np.array([[-1., 1.]])}
        >>> rnn = {"classes": ["1", "0"], "dev": np.array([[.4, .6], [.4, .6]]), "test": np.array([[.4, .6]])}
        >>> late_fusion(svc, rnn, ["1", "0"], ["1"])["dev"]
        1.0
    """
    import numpy as np

    classes = list(svc_scores["classes"])
    if sorted(classes) != sorted(pipeline_scores["classes"]):
        raise ValueError(f"the two models know different classes: {classes} and {pipeline_scores['classes']}")
    order = [list(pipeline_scores["classes"]).index(c) for c in classes]
    truth = {split: np.asarray(y, dtype=object).astype(str) for split, y in (("dev", y_dev), ("test", y_test))}

    def mixed(split, w, t):
        z = svc_scores[split] * t
        z = z - z.max(axis=1, keepdims=True)
        log_svm = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        log_rnn = np.log(np.asarray(pipeline_scores[split], dtype="float64")[:, order] + 1e-9)
        return (1 - w) * log_rnn + w * log_svm

    def accuracy(split, w, t):
        return float((np.asarray(classes, dtype=object)[mixed(split, w, t).argmax(axis=1)] == truth[split]).mean())

    best = None
    for t in temperatures:
        for w in np.linspace(0.0, 1.0, steps + 1):
            dev = accuracy("dev", w, t)
            if best is None or dev > best[0]:
                best = (dev, float(w), t)
    dev, w, t = best
    test = accuracy("test", w, t) if len(truth["test"]) else None
    return {"dev": dev, "test": test, "weight": round(w, 2), "temperature": t}


# -- the tagging baseline ---------------------------------------------------------------------------
def _shape(word: str) -> str:
    out = []
    for ch in word:
        s = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != s:
            out.append(s)
    return "".join(out)


def word_features(sentence) -> list[dict]:
    """CRF features of each token of a sentence: the word and its neighbours (no POS, no chunks).

    Example:
        >>> word_features(["Mr", "Smith"])[1]["-1:word"], word_features(["Mr", "Smith"])[1]["shape"]
        ('mr', 'Xx')
    """
    out = []
    for i, word in enumerate(sentence):
        lower = word.lower()
        f = {"bias": 1.0, "word": lower, "pre2": lower[:2], "pre3": lower[:3], "suf2": lower[-2:], "suf3": lower[-3:],
             "title": word.istitle(), "upper": word.isupper(), "digit": word.isdigit(), "shape": _shape(word)}
        for d in (-1, 1):
            j = i + d
            if 0 <= j < len(sentence):
                other = sentence[j]
                f.update({f"{d}:word": other.lower(), f"{d}:title": other.istitle(), f"{d}:upper": other.isupper(),
                          f"{d}:shape": _shape(other)})
            else:
                f["BOS" if d < 0 else "EOS"] = True
        out.append(f)
    return out


def crf_available() -> str | None:
    """None when sklearn-crfsuite imports, else why not (one line)."""
    try:
        import sklearn_crfsuite  # noqa: F401
    except ImportError as err:
        return f"sklearn-crfsuite is not installed ({err}); {INSTALL_HINT}"
    return None


def crf(train, dev, test, c2_grid=(0.03, 0.1, 0.3), c1: float = 0.1, iterations: int = 100) -> dict:
    """A linear-chain CRF over ``word_features`` whose c2 is picked on dev by entity F1.

    Args:
        train / dev / test: ``(token lists, tag lists)``.
        c2_grid: the L2 weights to try (the first wins a tie).
        c1: the L1 weight.
        iterations: L-BFGS iterations.

    Returns:
        ``dev`` and ``test`` entity F1 (micro), ``dev_report`` / ``test_report`` (precision,
        recall, per type), the chosen ``c2``, ``dev_by_c2`` and ``fit_seconds``; or
        ``{"unavailable": reason}`` when sklearn-crfsuite is missing.
    """
    reason = crf_available()
    if reason:
        return {"unavailable": reason}
    import sklearn_crfsuite

    from pipeline.tagging_metrics import tags_report

    t0 = time.perf_counter()
    f_train, f_dev = [word_features(s) for s in train[0]], [word_features(s) for s in dev[0]]
    best, dev_by_c2 = None, {}
    for c2 in c2_grid:
        model = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=iterations, all_possible_transitions=True)
        model.fit(f_train, [list(t) for t in train[1]])
        pred = [list(t) for t in model.predict(f_dev)]
        report = tags_report(dev[1], pred)
        dev_by_c2[c2] = report["f1"]
        if best is None or report["f1"] > best[2]["f1"]:
            best = (c2, model, report, pred)
    fit_seconds = time.perf_counter() - t0
    c2, model, dev_report, dev_pred = best
    has_test = bool(test[0])  # no test with --test-fraction 0
    test_pred = [list(t) for t in model.predict([word_features(s) for s in test[0]])] if has_test else []
    test_report = tags_report(test[1], test_pred) if has_test else None
    result = {
        "dev": dev_report["f1"], "test": test_report["f1"] if test_report else None, "c1": c1, "c2": c2,
        "iterations": iterations, "dev_by_c2": {str(k): round(v, 4) for k, v in dev_by_c2.items()},
        "dev_report": _short_report(dev_report), "test_report": _short_report(test_report) if test_report else None,
        "fit_seconds": fit_seconds,
    }
    try:
        from seqeval.metrics import f1_score
    except ImportError:
        pass
    else:
        result["seqeval_f1"] = {"dev": f1_score([list(t) for t in dev[1]], dev_pred),
                                "test": f1_score([list(t) for t in test[1]], test_pred) if has_test else None}
    return result


def _short_report(report: dict) -> dict:
    keys = ("precision", "recall", "f1", "accuracy", "gold_entities", "predicted_entities", "correct_entities")
    out = {k: round(report[k], 4) if isinstance(report[k], float) else report[k] for k in keys if k in report}
    out["per_type_f1"] = {t: round(r["f1"], 4) for t, r in report.get("per_type", {}).items()}
    return out


# -- the pipeline side ------------------------------------------------------------------------------
def pipeline_row(task, train, dev, test, config_path=None, model_path=None, overrides=(), save=None, verbose=2,
                 scores=False) -> dict:
    """Train the pipeline of ``config_path`` on ``train`` (best epoch on dev), or load the one
    saved at ``model_path``, and score dev and test with its own ``evaluate``."""
    from pipeline import Pipeline
    from pipeline.config import apply_overrides, load_yaml

    if model_path:
        p, fit_seconds = Pipeline.load(model_path), None
    else:
        p = Pipeline.from_config(apply_overrides(load_yaml(config_path), list(overrides)))
    if p.task != task:
        raise SystemExit(f"{model_path or config_path} is a {p.task} pipeline; this corpus needs a {task} one")
    if not model_path:
        t0 = time.perf_counter()
        p.fit(train[0], train[1], validation_data=dev, verbose=verbose)
        fit_seconds = time.perf_counter() - t0
        if save:
            p.save(save)
    metric = "accuracy" if task == "classification" else "f1"
    row = {
        "dev": p.evaluate(*dev)[metric], "test": p.evaluate(*test)[metric] if test[0] else None, "fit_seconds": fit_seconds,
        "name": p.get_config().get("name"), "source": model_path or config_path,
    }
    if scores:
        row["_scores"] = {"classes": [str(k) for k in p.stage("decoder").labels_],
                          "dev": p.predict_scores(dev[0]), "test": p.predict_scores(test[0]) if test[0] else None}
    return row


# -- running and reporting --------------------------------------------------------------------------
def read_split(corpus: str, path: str, spec: dict):
    """Read one split with the project's readers and the shipped config's ``data`` options."""
    from pipeline.config import load_yaml
    from pipeline.conll import read_tagged
    from pipeline.readers import read_corpus

    if spec["config"]:
        options = {k: v for k, v in (load_yaml(os.path.join(ROOT, spec["config"])).get("data") or {}).items()
                   if k not in ("train", "dev")}
    else:
        options = dict(spec["data"])
    if spec["task"] == "tagging":
        read = read_tagged(path, options)
    else:
        read = read_corpus(path, options)
    if read.skipped:
        print(f"{path}: skipped {len(read.skipped)} malformed rows; first: {read.skipped[0][2]}", file=sys.stderr)
    return read


def documents(path: str, starts) -> list[int]:
    """The document (count of ``-DOCSTART-`` lines before it) of each sentence starting at ``starts``."""
    import bisect

    from pipeline.conll import DOCSTART
    from pipeline.readers import open_text_lines

    marks = [lineno for lineno, line in open_text_lines(path) if line.split(None, 1)[:1] == [DOCSTART]]
    return [bisect.bisect_left(marks, start) for start in starts]


def run_corpus(corpus: str, args) -> tuple[dict, list[dict]]:
    spec = CORPORA[corpus]
    paths = {split: os.path.join(args.data_dir, spec[split]) for split in ("train", "dev")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    metric = "accuracy" if spec["task"] == "classification" else "entity F1"
    if missing:
        note = f"{missing[0]} does not exist" + (" (no TREC corpus in the shared data: hook only)" if corpus == "trec" else "")
        return {"corpus": corpus, "skipped": note}, [{"corpus": corpus, "model": "(skipped)", "metric": metric, "note": note}]
    read = read_split(corpus, paths["train"], spec)
    texts, labels = read.texts[: args.limit], read.labels[: args.limit]
    dev_read = read_split(corpus, paths["dev"], spec)
    dev = (dev_read.texts, dev_read.labels)
    if spec["task"] == "classification":
        stratify, groups, how = labels, None, "stratified by label"
    else:
        # Sentences of one Reuters story share names: the carve keeps each story on one side.
        stratify, groups, how = None, documents(paths["train"], read.lines[: args.limit]), "whole documents"
    if args.test_fraction:
        keep, carved = carve_test(len(texts), args.test_fraction, args.seed, labels=stratify, groups=groups)
    else:  # --test-fraction 0: all of train, as the configs' own benchmarks train; dev figures only
        keep, carved, how = list(range(len(texts))), [], "none carved"
    train = (_subset(texts, keep), _subset(labels, keep))
    test = (_subset(texts, carved), _subset(labels, carved))
    info = {
        "corpus": corpus, "task": spec["task"], "metric": metric, "train_path": paths["train"], "dev_path": paths["dev"],
        "train_examples": len(texts), "trained_on": len(keep), "carved_test": len(carved), "dev_examples": len(dev[0]),
        "carve": how, "carved_documents": len(set(_subset(groups, carved))) if groups else None,
        # The same digest means the same carved examples (for comparing runs and saved models).
        "carved_sha1": hashlib.sha1(",".join(map(str, carved)).encode()).hexdigest()[:12],
    }
    print(f"{corpus}: {len(texts)} train -> {len(keep)} to train on + {len(carved)} carved test "
          f"(seed {args.seed}, fraction {args.test_fraction:g}, {how}), {len(dev[0])} dev", flush=True)
    rows = []
    if spec["task"] == "classification":
        features = spec["features"]
        result = tfidf_svc(train, dev, test, c_grid=args.c_grid, **features)
        name = (f"TF-IDF word {'-'.join(map(str, features['word_ngrams']))}"
                f"{' (jieba)' if features['words'] == 'jieba' else ''} + char {'-'.join(map(str, features['char_ngrams']))}, "
                f"LinearSVC C={result['C']:g}")
        rows.append({"corpus": corpus, "model": name, "metric": metric, **result})
    else:
        result = crf(train, dev, test, c2_grid=args.crf_c2_grid, iterations=args.crf_iterations)
        if "unavailable" in result:
            rows.append({"corpus": corpus, "model": "CRF (word features)", "metric": metric, "note": result["unavailable"]})
        else:
            rows.append({"corpus": corpus, "model": f"CRF word features, c1={result['c1']:g} c2={result['c2']:g}",
                         "metric": metric, **result})
    if len(args.corpus) > 1 or args.pipeline or args.pipeline_model:
        print(_table(rows[-1:]), flush=True)  # before a long pipeline run or the next corpus
    if args.pipeline or args.pipeline_model:
        result = pipeline_row(spec["task"], train, dev, test, config_path=args.pipeline, model_path=args.pipeline_model,
                              overrides=args.set, save=args.save_pipeline, verbose=args.verbose,
                              scores=args.fuse and spec["task"] == "classification")
        label = f"pipeline {result['name']}" + (" (saved; test held out only if trained on the same 90 %)"
                                                 if args.pipeline_model else "")
        rows.append({"corpus": corpus, "model": label, "metric": metric, **result})
        if args.fuse and spec["task"] == "classification":
            fused = late_fusion(rows[0]["_scores"], result["_scores"], dev[1], test[1])
            rows.append({"corpus": corpus, "model": f"late fusion: pipeline + LinearSVC, w={fused['weight']:g} "
                         f"t={fused['temperature']:g} (picked on dev)", "metric": metric, **fused})
    for row in rows:
        row.pop("_scores", None)
    return info, rows


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _table(rows) -> str:
    header = ("corpus", "model", "metric", "dev", "carved test", "fit s")
    body = [(r["corpus"], r["model"], r["metric"], _percent(r.get("dev")), _percent(r.get("test")),
             "-" if r.get("fit_seconds") is None else f"{r['fit_seconds']:.1f}") for r in rows]
    widths = [max(len(str(line[i])) for line in (header, *body)) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) if i < 3 else str(v).rjust(w) for i, (v, w) in enumerate(zip(line, widths)))
             for line in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r['corpus']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + notes)


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0.1,0.3,1. Received: {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected one or more positive numbers. Received: {text!r}")
    return values


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be 0 (no carved test) or between 0 and 1. Received: {text!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", choices=sorted(CORPORA),
                        help=f"corpus to run (repeatable; default: {', '.join(DEFAULT_CORPORA)})")
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"),
                        help="folder holding sst2/, chnsenticorp/, conll2003/ (default: ../shared/data)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the carved test split (default 13)")
    parser.add_argument("--test-fraction", type=_fraction, default=0.1, help="share of train carved as the test estimate (default 0.1); 0: none, train on all of train and "
                        "report dev only (the setting of the configs' own benchmarks and the README results table)")
    parser.add_argument("--c-grid", type=_floats, default=(0.03, 0.1, 0.3, 1.0, 3.0),
                        help="LinearSVC C values tried on dev (default 0.03,0.1,0.3,1,3)")
    parser.add_argument("--crf-c2-grid", type=_floats, default=(0.03, 0.1, 0.3), help="CRF c2 values tried on dev (default 0.03,0.1,0.3)")
    parser.add_argument("--crf-iterations", type=int, default=100, help="CRF L-BFGS iterations (default 100)")
    parser.add_argument("--limit", type=int, help="use the first N training examples only (smoke runs)")
    parser.add_argument("--pipeline", metavar="CONFIG", help="also train this pipeline config on the same part of train and score it")
    parser.add_argument("--pipeline-model", metavar="PATH", help="also score this saved pipeline folder")
    parser.add_argument("--save-pipeline", metavar="DIR", help="save the pipeline --pipeline trains here")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="override an option of the --pipeline config, e.g. training.epochs=2 (YAML value); repeatable")
    parser.add_argument("--fuse", action="store_true",
                        help="classification with --pipeline/--pipeline-model: also score a mix of the two models' "
                             "probabilities, the SVM's weight picked on dev")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity of --pipeline")
    parser.add_argument("--json", "--json-out", dest="json_out", metavar="PATH", help="write the rows and the run's settings here as JSON")
    args = parser.parse_args(argv)
    args.corpus = args.corpus or list(DEFAULT_CORPORA)
    if args.pipeline and args.pipeline_model:
        parser.error("give --pipeline CONFIG or --pipeline-model PATH, not both")
    if (args.pipeline or args.pipeline_model) and len(args.corpus) != 1:
        parser.error("--pipeline / --pipeline-model need exactly one --corpus")
    if (args.set or args.save_pipeline) and not args.pipeline:
        parser.error("--set and --save-pipeline apply to --pipeline CONFIG")
    if args.fuse and not (args.pipeline or args.pipeline_model):
        parser.error("--fuse mixes a pipeline with the baseline: give --pipeline CONFIG or --pipeline-model PATH")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from pipeline.errors import ConfigError, DataError

    classification = [c for c in args.corpus if CORPORA[c]["task"] == "classification"]
    if classification:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise SystemExit(f"the baselines need scikit-learn: {INSTALL_HINT}") from None
    infos, rows = [], []
    try:
        for corpus in args.corpus:
            info, corpus_rows = run_corpus(corpus, args)
            infos.append(info)
            rows += corpus_rows
    except (ConfigError, DataError) as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from None
    print()
    print(_table(rows))
    if args.json_out:
        result = {
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "seed": args.seed, "test_fraction": args.test_fraction, "c_grid": list(args.c_grid),
            "crf_c2_grid": list(args.crf_c2_grid), "crf_iterations": args.crf_iterations, "limit": args.limit,
            "corpora": infos, "rows": rows,
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                        "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None},
        }
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
