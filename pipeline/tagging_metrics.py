"""Entity-level metrics for taggers, with the counting rules of conlleval / ``seqeval``.

An entity counts as correct only when its type, start and end all match a gold entity of the
same sentence. Precision, recall and F1 are computed overall (micro: pooled counts, the
conlleval headline) and per type; macro figures average the types. A type with no gold and no
predicted entity gets 0, as seqeval reports it. ``tags_report`` reads tag sequences with the
same rules as ``seqeval`` in its default mode, so its figures equal seqeval's.
"""

from __future__ import annotations

from collections import Counter

from stages.tag_schemes import tags_to_spans


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_report(gold, predicted) -> dict:
    """Entity-level precision, recall and F1.

    Args:
        gold: one collection of ``(type, start, end)`` entities per sentence.
        predicted: the predicted entities, in the same layout.

    Returns:
        ``precision``, ``recall``, ``f1`` (micro); ``macro_precision`` / ``macro_recall`` /
        ``macro_f1``; ``per_type`` (type -> precision, recall, f1, support = gold count,
        predicted); and the counts ``gold_entities``, ``predicted_entities``,
        ``correct_entities``.

    Example:
        >>> r = entity_report([[("PER", 0, 2)]], [[("PER", 0, 2), ("LOC", 3, 4)]])
        >>> round(r["precision"], 2), r["recall"], r["per_type"]["LOC"]["f1"]
        (0.5, 1.0, 0.0)
    """
    if len(gold) != len(predicted):
        raise ValueError(f"Got {len(gold)} gold sentences but {len(predicted)} predicted ones")
    n_gold, n_pred, n_ok = Counter(), Counter(), Counter()
    for g, p in zip(gold, predicted):
        g = {tuple(e) for e in g}
        p = {tuple(e) for e in p}
        n_gold.update(e[0] for e in g)
        n_pred.update(e[0] for e in p)
        n_ok.update(e[0] for e in g & p)
    per_type = {}
    for type_ in sorted(set(n_gold) | set(n_pred)):
        precision, recall, f1 = _prf(n_ok[type_], n_pred[type_], n_gold[type_])
        per_type[type_] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": n_gold[type_],
            "predicted": n_pred[type_],
        }
    precision, recall, f1 = _prf(sum(n_ok.values()), sum(n_pred.values()), sum(n_gold.values()))
    rows = list(per_type.values())

    def mean(key):
        return sum(r[key] for r in rows) / len(rows) if rows else 0.0

    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_precision": mean("precision"),
        "macro_recall": mean("recall"),
        "macro_f1": mean("f1"),
        "gold_entities": sum(n_gold.values()),
        "predicted_entities": sum(n_pred.values()),
        "correct_entities": sum(n_ok.values()),
        "per_type": per_type,
    }


def token_accuracy(gold_tags, predicted_tags) -> float:
    """The share of tokens whose predicted tag equals the gold tag."""
    total = correct = 0
    for g, p in zip(gold_tags, predicted_tags):
        if len(g) != len(p):
            raise ValueError(f"A sentence has {len(g)} gold tags but {len(p)} predicted ones")
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p))
    return correct / total if total else 0.0


def tags_report(gold_tags, predicted_tags) -> dict:
    """``entity_report`` plus token ``accuracy`` from tag sequences (any scheme, conlleval rules).

    Example:
        >>> tags_report([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])["f1"]
        1.0
    """
    gold = [tags_to_spans(list(t)) for t in gold_tags]
    pred = [tags_to_spans(list(t)) for t in predicted_tags]
    report = entity_report(gold, pred)
    report["accuracy"] = token_accuracy(gold_tags, predicted_tags)
    return report
