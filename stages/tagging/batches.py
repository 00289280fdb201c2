"""Training and prediction batches of the tagger (the one ``LengthBatches``), and the callback
that scores dev epochs."""

from __future__ import annotations

import keras

from ..batching import LengthBatches


def TaggingBatches(items, input_names, batch_size: int, shuffle: bool = True, seed: int = 0, with_targets: bool = True):
    """The tagger's batches of sentence pieces: ``stages.batching.LengthBatches`` over the
    encoded pieces (dicts of arrays, one per piece), grouped by the length of ``token_ids``.

    Yields ``(inputs, tag ids, token weights)`` (or only ``inputs`` without targets), where
    ``inputs`` is a dict of the model's input arrays and the weights are 1 on real tokens.
    """
    names = list(input_names)
    columns = {name: [it[name] for it in items] for name in names}
    if with_targets:
        columns["y"] = [it["y"] for it in items]
    return LengthBatches(columns, names, "y" if with_targets else None, batch_size, shuffle=shuffle, seed=seed,
                         jitter=(-2.0, 2.0), length_of="token_ids", weights=with_targets)


class EpochEndScorer(keras.callbacks.Callback):
    """Adds the figures of ``score()`` (a dict) to the logs at the end of every epoch.

    Put it first in the callback list so early stopping, checkpoints and the CSV log see them.

    Args:
        score: a function returning ``{name: value}``.
        maximize: names among the figures for which higher is better.
    """

    def __init__(self, score, maximize=()):
        super().__init__()
        self.score = score
        self.maximize = tuple(maximize)

    def set_modes(self, callbacks):
        """Set ``mode="max"`` on callbacks (early stopping, checkpoints) that watch one of the
        ``maximize`` figures with ``mode="auto"``: Keras infers the direction only for metrics
        the model itself computes, and refuses a figure this callback writes."""
        for callback in callbacks:
            if getattr(callback, "monitor", None) in self.maximize and getattr(callback, "mode", None) == "auto":
                callback.mode = "max"

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.score())
