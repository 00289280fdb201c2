"""Training and prediction batches of the tagger, and the callback that scores dev epochs."""

from __future__ import annotations

import keras
import numpy as np


def _round_up(n: int, step: int | None = None) -> int:
    # JAX compiles the training step once per batch shape, so there the lengths go up in
    # coarser steps (fewer shapes, more padding); TensorFlow runs unseen shapes without a
    # long compile.
    step = step or (32 if keras.backend.backend() == "jax" else 8)
    return max(step, -(-n // step) * step)


class TaggingBatches(keras.utils.PyDataset):
    """Length-bucketed, padded batches of tagged sentence pieces (a Keras ``PyDataset``).

    Sentences of similar length share a batch and each batch is padded (after the tokens) to
    its longest piece rounded up to a multiple of 8 (32 on JAX, which compiles each shape), so
    little time goes into padding and the compiled step sees few distinct shapes. With
    ``shuffle`` the batches are re-drawn each epoch.

    Yields ``(inputs, tag ids, token weights)`` (or only ``inputs`` without targets), where
    ``inputs`` is a dict of the model's input arrays and the weights are 1 on real tokens.
    """

    def __init__(self, items, input_names, batch_size: int, shuffle: bool = True, seed: int = 0, with_targets: bool = True):
        super().__init__()
        self.items = items
        self.input_names = list(input_names)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.with_targets = with_targets
        self._rng = np.random.default_rng(seed)
        self.lengths = np.array([len(it["token_ids"]) for it in items], dtype="int64")
        self._make_batches()

    def _make_batches(self):
        n = len(self.items)
        if self.shuffle:
            keys = self.lengths + self._rng.uniform(-2.0, 2.0, size=n)
            order = np.argsort(keys, kind="stable")
        else:
            order = np.argsort(self.lengths, kind="stable")
        self.batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.shuffle:
            self._rng.shuffle(self.batches)

    def __len__(self):
        return len(self.batches)

    def _shape(self, index):
        chosen = [self.items[j] for j in self.batches[index]]
        length = _round_up(max(len(it["token_ids"]) for it in chosen))
        width = max((it["char_ids"].shape[1] for it in chosen), default=1) if "char_ids" in self.input_names else 0
        return length, width

    def __getitem__(self, index):
        chosen = [self.items[j] for j in self.batches[index]]
        length, width = self._shape(index)
        if index == 0 and len(self.batches) > 1 and keras.backend.backend() == "tensorflow":
            # Keras' TensorFlow adapter fixes every non-batch dimension that is equal in the
            # first two batches; make them differ so time and word length stay variable. (JAX
            # takes any shape, and there an extra one would only cost another compile.)
            other = self._shape(1)
            length += 8 if length == other[0] else 0
            width += 1 if width == other[1] else 0
        inputs = {}
        for name in self.input_names:
            if name == "char_ids":
                arr = np.zeros((len(chosen), length, width), dtype="int32")
                for r, it in enumerate(chosen):
                    a = it[name]
                    arr[r, : a.shape[0], : a.shape[1]] = a
            elif chosen[0][name].ndim == 2:  # a vector per token (bigram ids, lexicon features)
                first = chosen[0][name]
                arr = np.zeros((len(chosen), length, first.shape[1]), dtype=first.dtype)
                for r, it in enumerate(chosen):
                    arr[r, : len(it[name])] = it[name]
            else:
                arr = np.zeros((len(chosen), length), dtype="int32")
                for r, it in enumerate(chosen):
                    arr[r, : len(it[name])] = it[name]
            inputs[name] = arr
        if not self.with_targets:
            return inputs
        y = np.zeros((len(chosen), length), dtype="int32")
        w = np.zeros((len(chosen), length), dtype="float32")
        for r, it in enumerate(chosen):
            y[r, : len(it["y"])] = it["y"]
            w[r, : len(it["y"])] = 1.0
        return inputs, y, w

    def on_epoch_end(self):
        if self.shuffle:
            self._make_batches()


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
