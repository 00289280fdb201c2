"""Id lists to batches for ``Model.fit`` / ``evaluate``: the one ``stages.batching.LengthBatches``."""

from __future__ import annotations

from stages.batching import LengthBatches


def id_batches(columns: dict, batch_size: int, seed=None, shuffle: bool = False) -> LengthBatches:
    """Length-bucketed batches of id lists, padded per batch to multiples of 8. ``columns``:
    name -> id lists; every column but the last is a model input, the last is the target,
    whose lengths group the rows."""
    names = list(columns)
    return LengthBatches(columns, names[:-1], names[-1], batch_size, shuffle=shuffle, seed=seed, jitter=(0.0, 2.0),
                         step=8, dict_inputs=False)


def _truncate(ids, max_length, truncation="post"):
    if max_length is None or len(ids) <= max_length:
        return ids
    return ids[:max_length] if truncation == "post" else ids[len(ids) - max_length:]
