"""Decoder stages: turn model outputs back into answers."""

from __future__ import annotations

import os

import numpy as np

from .errors import DataError, short_repr
from .registry import register

from .base import Stage, check_bool, check_float, check_int, read_asset_lines, write_asset_lines


@register("decoder", "label")
class LabelDecoder(Stage):
    """Label strings and scores for classifiers.

    Labels are kept as strings in sorted order (``labels.txt``); the model's output unit ``i``
    scores ``labels_[i]``.

    Args:
        multi_label: each text may carry several labels (sigmoid scores, one per label);
            targets are lists of labels.
        top_k: how many best labels to list in each answer's ``top_k`` field (1: none listed).
        threshold: for multi-label, the score a label needs to be predicted.

    Example:
        >>> d = LabelDecoder(top_k=2).fit(["neg", "pos", "pos"])
        >>> d.decode(np.array([[0.2, 0.8]]))[0]["label"]
        'pos'
    """

    fitted_attributes = ("labels_",)

    def __init__(self, multi_label: bool = False, top_k: int = 1, threshold: float = 0.5):
        super().__init__()
        self.labels_ = None

    def _validate(self):
        check_bool("multi_label", self.multi_label)
        check_int("top_k", self.top_k, minimum=1)
        check_float("threshold", self.threshold, 0.0, 1.0)

    def fit(self, data):
        """Learn the label set from training targets (strings, or lists of strings if multi-label)."""
        seen = set()
        for target in data:
            seen.update(self._as_list(target))
        if len(seen) < (1 if self.multi_label else 2):
            raise DataError(
                f"Training data has {len(seen)} distinct label(s) {sorted(seen)}; a classifier needs at least 2"
            )
        broken = next((label for label in sorted(seen) if "\n" in label or "\r" in label), None)
        if broken is not None:
            # labels.txt holds one label a line.
            raise DataError(f"The label {short_repr(broken, 80)} holds a line break; labels must be one line each")
        self.labels_ = sorted(seen)
        self._index = {label: i for i, label in enumerate(self.labels_)}
        return self

    def _as_list(self, target):
        if self.multi_label:
            if isinstance(target, str):
                return [target] if target else []
            return [str(t) for t in target]
        if isinstance(target, (list, tuple)):
            raise DataError(f"Got a list of labels {short_repr(target)}; set decoder multi_label: true for multi-label data")
        return [str(target)]

    def encode(self, targets) -> np.ndarray:
        """Targets as class ids (single-label) or a multi-hot float matrix (multi-label)."""
        self.check_fitted()
        if self.multi_label:
            out = np.zeros((len(targets), len(self.labels_)), dtype=np.float32)
            for i, t in enumerate(targets):
                for label in self._as_list(t):
                    out[i, self._lookup(label)] = 1.0
            return out
        return np.array([self._lookup(self._as_list(t)[0]) for t in targets], dtype=np.int32)

    def _lookup(self, label):
        if not hasattr(self, "_index"):
            self._index = {lab: i for i, lab in enumerate(self.labels_)}
        try:
            return self._index[label]
        except KeyError:
            known = ", ".join(self.labels_)
            raise DataError(
                f"Label {short_repr(label, 80)} was not seen in training; known labels: "
                + (known if len(known) <= 300 else known[:300] + " ...")
            ) from None

    def transform(self, batch):
        return self.decode(batch)

    def decode(self, scores) -> list[dict]:
        """Answers from a ``(texts, labels)`` score array.

        Returns:
            One dict per text: ``label`` and ``score`` (the best label), ``top_k`` (a list of
            ``{"label", "score"}``, when ``top_k`` > 1), and for multi-label ``labels`` and
            ``scores`` of every label over the threshold.
        """
        self.check_fitted()
        scores = np.asarray(scores)
        order = np.argsort(-scores, axis=1, kind="stable")
        answers = []
        for row, idx in zip(scores, order):
            best = int(idx[0])
            answer = {"label": self.labels_[best], "score": float(row[best])}
            if self.top_k > 1:
                answer["top_k"] = [{"label": self.labels_[int(i)], "score": float(row[i])} for i in idx[: self.top_k]]
            if self.multi_label:
                chosen = [int(i) for i in idx if row[i] >= self.threshold]
                answer["labels"] = [self.labels_[i] for i in chosen]
                answer["scores"] = [float(row[i]) for i in chosen]
            answers.append(answer)
        return answers

    def save_assets(self, directory):
        self.check_fitted()
        write_asset_lines(os.path.join(directory, "labels.txt"), self.labels_, what="label")

    def load_assets(self, directory):
        """Read ``labels.txt``: one label a line, none twice.

        Raises:
            FileNotFoundError: the file is missing.
            DataError: it is empty, repeats a label or is not UTF-8 (naming the file).
        """
        path = os.path.join(directory, "labels.txt")
        labels = read_asset_lines(path, "the saved pipeline's label list")
        if not labels:
            raise DataError(f"{path} lists no labels", path=path)
        self.labels_ = labels
        self._index = {label: i for i, label in enumerate(labels)}
