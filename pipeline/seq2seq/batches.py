"""Id lists to batches: length-bucketed and padded per batch, for ``Model.fit`` / ``evaluate``
and for batched decoding."""

from __future__ import annotations

import math

import numpy as np


def _pad(rows, multiple: int = 8) -> np.ndarray:
    """Right-pad id lists with 0 to the longest, rounded up to ``multiple`` (few distinct shapes,
    so compiled functions are reused)."""
    longest = max((len(r) for r in rows), default=1) or 1
    width = int(math.ceil(longest / multiple) * multiple)
    out = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _length_batches(lengths, batch_size, rng=None):
    """Index batches of sentences of similar length (little padding). With ``rng`` the lengths
    get a little noise (so batches differ between epochs) and the batch order is shuffled;
    without, batches come shortest first."""
    lengths = np.asarray(lengths, dtype=np.float64)
    key = lengths + (rng.uniform(0, 2, size=len(lengths)) if rng is not None else 0)
    order = np.argsort(key, kind="stable")
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


class _Batches:
    """Length-bucketed, per-batch padded id arrays; a new batch order each pass when shuffling.

    ``columns``: lists of id lists; the first ``n_inputs`` are model inputs, the last the target.
    """

    def __init__(self, columns, n_inputs, batch_size, seed=None, shuffle=True):
        self.columns, self.n_inputs, self.batch_size = columns, n_inputs, batch_size
        self.rng = np.random.default_rng(seed) if shuffle else None
        self.lengths = [len(r) for r in columns[-1]]
        self.batches = _length_batches(self.lengths, batch_size, self.rng)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, idx):
        index = self.batches[idx]
        arrays = [_pad([col[i] for i in index]) for col in self.columns]
        inputs = tuple(arrays[: self.n_inputs]) if self.n_inputs > 1 else arrays[0]
        return inputs, arrays[-1]

    def reshuffle(self):
        if self.rng is not None:
            self.batches = _length_batches(self.lengths, self.batch_size, self.rng)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
        self.reshuffle()


def _dataset(columns, n_inputs, batch_size, seed=None, shuffle=True):
    """Batches for ``Model.fit`` / ``evaluate``: a ``tf.data.Dataset`` on TensorFlow (declaring
    every dimension variable, since batches differ in size and width), a
    ``keras.utils.PyDataset`` on other backends."""
    import keras

    batches = _Batches(columns, n_inputs, batch_size, seed=seed, shuffle=shuffle)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec(shape=(None, None), dtype=tf.int32)
        inputs_spec = tuple([spec] * n_inputs) if n_inputs > 1 else spec
        ds = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=(inputs_spec, spec))
        # A known length lets Keras count steps (and not warn that the data "ran out").
        return ds.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return len(batches)

        def __getitem__(self, idx):
            return batches[idx]

        def on_epoch_end(self):
            batches.reshuffle()

    return Batches()


def _truncate(ids, max_length, truncation="post"):
    if max_length is None or len(ids) <= max_length:
        return ids
    return ids[:max_length] if truncation == "post" else ids[len(ids) - max_length:]
