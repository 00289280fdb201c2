"""The one batcher of variable-length examples: length-bucketed, padded per batch.

Taggers, translation and language models train on examples of very different lengths. Padding
all of them to the longest wastes most of the work, so examples of similar length share a
batch and each batch is padded only to its own longest example, rounded up to a few distinct
widths (compiled steps are reused). With ``shuffle`` the lengths get a little noise each pass,
so batches differ between epochs, and the batch order is shuffled.

Example:
    >>> b = LengthBatches({"ids": [[1, 2], [3], [4, 5, 6]], "y": [[1, 1], [0], [1, 0, 1]]},
    ...                   inputs=("ids",), target="y", batch_size=2, shuffle=False, step=8)
    >>> x, y = b[0]  # the two shortest targets, padded to 8
    >>> x["ids"].tolist(), y.shape
    ([[3, 0, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0]], (2, 8))
"""

from __future__ import annotations

import random

import numpy as np

try:  # a PyDataset where Keras is installed; the batches themselves need only NumPy
    from keras.utils import PyDataset as _Base
except ImportError:  # pragma: no cover
    _Base = object


def round_up(n: int, step: int) -> int:
    """``n`` rounded up to a multiple of ``step``, at least ``step``."""
    return max(step, -(-int(n) // step) * step)


def default_step() -> int:
    """The width step of padded batches: 8, or 32 on JAX, which compiles a step for each batch
    shape (fewer shapes, more padding); TensorFlow runs unseen shapes without a long compile."""
    import keras

    return 32 if keras.backend.backend() == "jax" else 8


def length_batches(lengths, batch_size: int, rng=None, jitter=(0.0, 2.0)) -> list[np.ndarray]:
    """Index batches of examples of similar length, shortest first. With ``rng`` the lengths
    get noise drawn uniformly from ``jitter`` and the batch order is shuffled."""
    lengths = np.asarray(lengths, dtype=np.float64)
    keys = lengths + rng.uniform(jitter[0], jitter[1], size=len(lengths)) if rng is not None else lengths
    order = np.argsort(keys, kind="stable")
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def pad(rows, step: int = 8, dtype=None) -> np.ndarray:
    """Stack sequences (lists or arrays whose first axis is time) into one zero-padded array:
    time padded to the longest, rounded up to ``step``; any further axis (a vector or the
    characters of each token) to its widest. Integer ids come out as int32; float arrays keep
    their type."""
    arrays = [np.asarray(r) for r in rows]
    if dtype is None:
        floats = [a.dtype for r, a in zip(rows, arrays) if isinstance(r, np.ndarray) and np.issubdtype(a.dtype, np.floating)]
        dtype = floats[0] if floats else np.int32
    ndim = max((a.ndim for a in arrays), default=1) or 1
    shape = [len(arrays), round_up(max((len(a) for a in arrays), default=0), step)]
    for axis in range(1, ndim):
        shape.append(max([a.shape[axis] for a in arrays if a.ndim > axis and len(a)] + [1]))
    out = np.zeros(shape, dtype=dtype)
    for i, a in enumerate(arrays):
        if len(a):
            out[(i, *(slice(0, n) for n in a.shape))] = a
    return out


class LengthBatches(_Base):
    """Length-bucketed batches of named columns, padded per batch (a Keras ``PyDataset``).

    Args:
        columns: column name -> one sequence per example (a list of ids, or an array whose first
            axis is time); every column has one entry per example.
        inputs: the names of the model's input columns.
        target: the target column (None: batches hold the inputs alone).
        batch_size: examples per batch.
        shuffle: new noisy length order and batch order on each pass.
        seed: seed of the shuffling.
        jitter: range of the noise added to lengths when shuffling.
        step: padded widths are multiples of this (default: ``default_step()``).
        length_of: the column whose lengths group the examples (default: the target, or the
            first input).
        weights: also yield per-position weights, 1 on the target's real positions.
        dict_inputs: inputs as a dict by name (else a tuple, or the one array alone).
        example_target: the target holds one fixed-shape value per example (a class id, a
            multi-hot row), not a sequence: it is stacked as it is, and the examples are grouped
            by the first input's lengths.

    Yields ``(inputs, target[, weights])``, or ``inputs`` without a target. ``batches`` holds
    the example indices of each batch, in the current order.
    """

    def __init__(self, columns: dict, inputs, target: str | None = None, batch_size: int = 32, shuffle: bool = True,
                 seed: int | None = None, jitter=(0.0, 2.0), step: int | None = None, length_of: str | None = None,
                 weights: bool = False, dict_inputs: bool = True, example_target: bool = False):
        if _Base is not object:
            super().__init__()
        self.columns = dict(columns)
        self.inputs = list(inputs)
        self.target = target
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: batch_size={batch_size!r}")
        self.jitter = tuple(jitter)
        self.step = step or default_step()
        self.weights = weights
        self.dict_inputs = dict_inputs
        self.example_target = example_target
        if example_target and weights:
            raise ValueError("weights mark a sequence target's real positions; an example_target has none")
        self.rng = np.random.default_rng(seed) if shuffle else None
        key = self.columns[length_of or (None if example_target else target) or self.inputs[0]]
        self.lengths = [len(r) for r in key]
        self._passes = 0
        self.reshuffle()

    def reshuffle(self):
        """Draw the batches (again, for a new pass when shuffling)."""
        self.batches = length_batches(self.lengths, self.batch_size, self.rng, self.jitter)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, idx):
        index = self.batches[idx]
        arrays = {name: pad([self.columns[name][i] for i in index], self.step) for name in self.inputs}
        inputs = arrays if self.dict_inputs else (
            tuple(arrays[n] for n in self.inputs) if len(self.inputs) > 1 else arrays[self.inputs[0]])
        if self.target is None:
            return inputs
        if self.example_target:
            return inputs, np.stack([np.asarray(self.columns[self.target][i]) for i in index])
        y = pad([self.columns[self.target][i] for i in index], self.step)
        if not self.weights:
            return inputs, y
        w = np.zeros(y.shape[:2], dtype="float32")
        for row, i in enumerate(index):
            w[row, : len(self.columns[self.target][i])] = 1.0
        return inputs, y, w

    def on_epoch_end(self):
        if self.rng is not None:
            self.reshuffle()

    def _passes_of_batches(self, shuffle_order: bool):
        # A new pass (an epoch) starts from freshly drawn batches, the first from those drawn
        # at construction.
        if self._passes and self.rng is not None:
            self.reshuffle()
        self._passes += 1
        order = list(range(len(self)))
        if shuffle_order:
            random.shuffle(order)
        for i in order:
            yield self[i]

    def for_fit(self, shuffle_order: bool = False):
        """What ``Model.fit`` / ``evaluate`` take: on TensorFlow a ``tf.data.Dataset`` that
        declares batch and time variable (batches differ in size and width; Keras' own adapter
        would fix any dimension the first two batches agree on), elsewhere the batches
        themselves.

        Args:
            shuffle_order: on TensorFlow, also visit the batches of each pass in an order drawn
                with Python's ``random``, as Keras does with a ``PyDataset`` given to
                ``fit(shuffle=True)``; so a model sees the same batches in the same order on
                every backend (and as in earlier versions, which gave Keras the batches).
        """
        import keras

        if not self.batches:
            raise ValueError("There are no examples to batch: the training or dev set is empty after tokenizing")
        if keras.backend.backend() != "tensorflow":
            return self
        import tensorflow as tf

        def spec(name, array):
            if name == self.target and self.example_target:
                return tf.TensorSpec(shape=(None, *np.shape(array)[1:]), dtype=array.dtype)
            # Batch and time vary; a further axis keeps its size where every example has the
            # same (a feature vector a layer is built for), else varies too (characters).
            sizes = {np.shape(r)[1:] for r in self.columns[name] if len(r)}
            inner = list(sizes.pop()) if len(sizes) == 1 else [None] * (array.ndim - 2)
            return tf.TensorSpec(shape=(None, None, *inner), dtype=array.dtype)

        first = self[0]
        if self.dict_inputs:
            names = {name: name for name in self.inputs}
        else:
            names = tuple(self.inputs) if len(self.inputs) > 1 else self.inputs[0]
        if self.target is not None:
            names = (names, self.target, self.target) if self.weights else (names, self.target)
        signature = tf.nest.map_structure(spec, names, first)
        ds = tf.data.Dataset.from_generator(lambda: self._passes_of_batches(shuffle_order), output_signature=signature)
        # A known length lets Keras count steps (and not warn that the data "ran out").
        return ds.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)
