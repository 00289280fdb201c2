"""Text regression: one number per text (a rating, a score, a reading age).

The many-to-one shape of a classifier with a linear head: ids -> one-hot or embedding ->
(bi)RNN -> pooling -> ``Dense(1)``, trained with the mean squared error on targets scaled to
mean 0 and standard deviation 1 (the ``value`` decoder keeps the scale and undoes it).

This package is the worked example of a task family as a plug-in (docs/tasks.md): its two
stages and its ``Pipeline`` subclass live here, its SavedModel exporter in ``export.py`` (imported
only by ``Pipeline.export``), and one import line in ``pipeline/__init__.py`` registers them.

Example:
    >>> from pipeline import Pipeline
    >>> p = Pipeline.from_config({"task": "regression", "stages": {
    ...     "tokenizer": {"type": "char"}, "vocabulary": {},
    ...     "vectorizer": {"type": "onehot", "max_length": 16},
    ...     "model": {"type": "rnn_regressor", "cell": "gru", "units": 8},
    ...     "decoder": {"type": "value"}}})
    >>> _ = p.fit(["很好", "不错", "很差", "太差"], [5, 4, 1, 2], epochs=1, verbose=0)
    >>> sorted(p.predict(["好"])[0])
    ['value']
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from stages.base import Stage, check_choice, check_float
from stages.errors import ConfigError, DataError
from stages.models import RNNClassifier
from stages.registry import register

from ...classification import ClassificationPipeline
from ...config import CLASSIFICATION_DATA
from ...core import register_task


#: The ``data`` options: where the text and the target number are (no label prefix or separator).
REGRESSION_DATA = {
    "format": ("tsv", lambda n, v: check_choice(n, v, ("tsv", "csv", "jsonl"))),
    **{key: CLASSIFICATION_DATA[key] for key in ("text_column", "label_column", "header")},
}


@register("model", "rnn_regressor")
class RNNRegressor(RNNClassifier):
    """Many-to-one recurrent regressor: ``rnn_classifier``'s network (every option the same,
    ``ngrams`` and ``ensemble`` included) with one linear output, trained with the mean
    squared error; ``mae`` is its training metric."""

    network_name = "rnn_regressor"

    @staticmethod
    def _output_activation(multi_label: bool) -> str:
        return "linear"

    def _compile(self, model, multi_label: bool):
        import keras

        model.compile(optimizer=self._optimizer(), loss="mse", metrics=[keras.metrics.MeanAbsoluteError(name="mae")])


@register("decoder", "value")
class ValueDecoder(Stage):
    """Numbers in and out of a regressor: targets are scaled to mean 0 and standard deviation 1
    for training (``scale.json`` keeps the two), answers are scaled back.

    Args:
        minimum, maximum: clip answers into this range (null: no bound), e.g. 1 and 5 for star
            ratings.

    Example:
        >>> d = ValueDecoder().fit([1, 2, 3])
        >>> d.decode(d.encode([3.0]))[0]["value"]
        3.0
    """

    fitted_attributes = ("mean_", "std_")

    def __init__(self, minimum: float | None = None, maximum: float | None = None):
        super().__init__()
        self.mean_ = self.std_ = None

    def _validate(self):
        check_float("minimum", self.minimum, allow_none=True)
        check_float("maximum", self.maximum, allow_none=True)
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ConfigError("maximum", f"must be at least minimum ({self.minimum})", self.maximum)

    @staticmethod
    def values(targets) -> np.ndarray:
        """Targets as float64; DataError naming the first that is not a finite number."""
        out = np.empty(len(targets), dtype=np.float64)
        for i, target in enumerate(targets):
            try:
                out[i] = float(target)
            except (TypeError, ValueError):
                out[i] = math.nan
            if not math.isfinite(out[i]):
                raise DataError(f"target {i + 1} is {target!r}: a regression target must be a finite number")
        return out

    def fit(self, data):
        values = self.values(list(data))
        if len(values) < 2:
            raise DataError(f"Training data has {len(values)} target(s); a regressor needs at least 2")
        self.mean_ = float(values.mean())
        self.std_ = float(values.std()) or 1.0
        return self

    def encode(self, targets) -> np.ndarray:
        """Targets scaled to the training mean and standard deviation, ``(n, 1)`` float32."""
        self.check_fitted()
        return ((self.values(list(targets)) - self.mean_) / self.std_).astype(np.float32)[:, None]

    def scale_back(self, outputs) -> np.ndarray:
        """The model's outputs ``(n, 1)`` as values ``(n,)`` in float32, as the graph does it."""
        self.check_fitted()
        value = np.asarray(outputs, dtype=np.float32).reshape(-1) * np.float32(self.std_) + np.float32(self.mean_)
        low = -np.inf if self.minimum is None else self.minimum
        high = np.inf if self.maximum is None else self.maximum
        return np.clip(value, np.float32(low), np.float32(high)).astype(np.float32)

    def decode(self, outputs) -> list[dict]:
        """One ``{"value": number}`` per text."""
        return [{"value": float(v)} for v in self.scale_back(outputs)]

    def save_assets(self, directory):
        self.check_fitted()
        with open(os.path.join(directory, "scale.json"), "w", encoding="utf-8") as f:
            json.dump({"mean": self.mean_, "std": self.std_}, f)

    def load_assets(self, directory):
        path = os.path.join(directory, "scale.json")
        try:
            with open(path, encoding="utf-8") as f:
                scale = json.load(f)
            self.mean_, self.std_ = float(scale["mean"]), float(scale["std"])
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: the saved regressor's target scale") from None
        except (ValueError, TypeError, KeyError) as err:
            raise DataError(f"{path} must hold {{\"mean\": number, \"std\": number}} ({err})", path=path) from None
        if not (math.isfinite(self.mean_) and math.isfinite(self.std_) and self.std_ > 0):
            raise DataError(f"{path} holds mean {self.mean_} and std {self.std_}; std must be a positive number", path=path)


@register_task("regression")
class RegressionPipeline(ClassificationPipeline):
    """Text regression: ``fit(texts, numbers)``; ``predict`` answers ``{"value"}`` per text;
    ``evaluate`` gives ``mae``, ``rmse``, ``r2`` and ``pearson``.

    Fitting, ensembles, run folders and batch prediction are the classification family's,
    with the model's width and the metrics swapped (``_model_outputs``, ``evaluate``).
    """

    data_options = REGRESSION_DATA
    exporter_module = "pipeline.tasks.regression.export"
    training_options = {**ClassificationPipeline.training_options,
                        "monitor": ("val_loss", lambda n, v: check_choice(n, v, ("val_loss", "val_mae")))}

    def _read(self, path: str, need_targets: bool):
        """A corpus whose targets become floats (DataError naming the line of one that is not)."""
        from ...readers import Corpus, iter_records

        corpus = Corpus(labels=[] if need_targets else None, path=path)
        for lineno, text, target in iter_records(path, self.data, need_targets):
            if text is None:
                corpus.skipped.append((path, lineno, str(target)))
                continue
            if need_targets:
                try:
                    target = float(ValueDecoder.values([target])[0])
                except DataError:
                    reason = f"the target {target!r} is not a number"
                    if self.data["on_error"] == "skip":
                        corpus.skipped.append((path, lineno, reason))
                        continue
                    raise DataError(
                        f"{path}:{lineno}: {reason}; "
                        f"data.label_column ({self.data['label_column']!r}) must hold one number a row",
                        path=path, lineno=lineno,
                    ) from None
                corpus.labels.append(target)
            corpus.texts.append(text)
        return corpus

    def _model_outputs(self) -> dict:
        return {"n_outputs": 1}

    @property
    def labels(self) -> list[str]:
        return ["value"]

    def evaluate(self, texts, targets, batch_size: int | None = None) -> dict:
        """``n``, ``mae``, ``rmse``, ``r2`` (1 - residual / total sum of squares) and ``pearson``."""
        texts = list(texts)
        want = ValueDecoder.values(list(targets))
        if len(texts) != len(want):
            raise ValueError(f"Got {len(texts)} texts but {len(want)} targets")
        got = self.stage("decoder").scale_back(self.predict_scores(texts, batch_size))
        return regression_report(want, got)


def regression_report(y_true, y_pred) -> dict:
    """``n``, ``mae``, ``rmse``, ``r2`` (1 - residual / total sum of squares; 0 when the
    targets are all equal) and ``pearson`` (0 when either side is constant).

    Example:
        >>> regression_report([1, 2, 3], [1, 2, 4])["mae"]
        0.3333333333333333
    """
    want = np.asarray(y_true, dtype=np.float64).reshape(-1)
    got = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(want) != len(got):
        raise ValueError(f"Got {len(want)} targets but {len(got)} predictions")
    if not len(want):
        return {"n": 0, "mae": 0.0, "rmse": 0.0, "r2": 0.0, "pearson": 0.0}
    error = got - want
    total = float(((want - want.mean()) ** 2).sum())
    spread = float(got.std() * want.std())
    return {
        "n": len(want),
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": 1.0 - float((error**2).sum()) / total if total else 0.0,
        "pearson": float(((got - got.mean()) * (want - want.mean())).mean() / spread) if spread else 0.0,
    }
