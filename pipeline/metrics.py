"""Classification metrics in plain numpy: accuracy, precision / recall / F1, confusion matrix."""

from __future__ import annotations

import numpy as np


def _prf(tp, fp, fn):
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification_report(y_true, y_pred, labels) -> dict:
    """Metrics for single-label predictions.

    Args:
        y_true: true class ids.
        y_pred: predicted class ids.
        labels: label names, indexed by class id.

    Returns:
        ``accuracy``; ``macro_precision`` / ``macro_recall`` / ``macro_f1`` (unweighted mean over
        labels); ``micro_*`` (pooled counts; equal to accuracy for single-label data);
        ``per_class`` (label -> precision, recall, f1, support); ``confusion_matrix`` (rows: true
        label, columns: predicted label, in the order of ``labels``); ``labels``; ``support``.

    Example:
        >>> r = classification_report([0, 1, 1], [0, 1, 0], ["neg", "pos"])
        >>> round(r["accuracy"], 3), r["confusion_matrix"]
        (0.667, [[1, 0], [1, 1]])
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return _report(tp, fp, fn, labels, cm.sum(axis=1), accuracy=float(tp.sum() / max(len(y_true), 1)), cm=cm)


def multilabel_report(y_true, y_pred, labels) -> dict:
    """Metrics for multi-label 0/1 matrices; ``accuracy`` is the exact-match (subset) accuracy."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    tp = (y_true & y_pred).sum(axis=0)
    fp = (~y_true & y_pred).sum(axis=0)
    fn = (y_true & ~y_pred).sum(axis=0)
    accuracy = float((y_true == y_pred).all(axis=1).mean()) if len(y_true) else 0.0
    return _report(tp, fp, fn, labels, y_true.sum(axis=0), accuracy=accuracy, cm=None)


def _report(tp, fp, fn, labels, support, accuracy, cm):
    per_class = {}
    for i, label in enumerate(labels):
        p, r, f = _prf(int(tp[i]), int(fp[i]), int(fn[i]))
        per_class[label] = {"precision": p, "recall": r, "f1": f, "support": int(support[i])}
    micro = _prf(int(tp.sum()), int(fp.sum()), int(fn.sum()))
    report = {
        "accuracy": accuracy,
        "macro_precision": float(np.mean([c["precision"] for c in per_class.values()])),
        "macro_recall": float(np.mean([c["recall"] for c in per_class.values()])),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
        "support": int(np.sum(support)),
        "labels": list(labels),
        "per_class": per_class,
    }
    if cm is not None:
        report["confusion_matrix"] = cm.tolist()
    return report
