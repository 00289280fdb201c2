"""One Keras callback for the benchmarks that train: each epoch's wall time and logs, printed as a
JSON line (unless ``echo=False``), and a wall-clock budget (``--max-minutes``) that stops training
before an epoch that would overrun it. Pass it to ``Pipeline.fit(..., callbacks=[clock])``;
``clock.epochs`` then holds ``{"epoch", "seconds", <logs>}`` per epoch.
"""

from __future__ import annotations

import json
import time

import keras


class EpochClock(keras.callbacks.Callback):
    """Times each epoch and stops before one that would pass ``max_minutes`` of training.

    The next epoch is expected to take as long as the last, except after the first (which
    includes tracing), so a budget shorter than one epoch still runs one.
    """

    def __init__(self, max_minutes: float | None = None, digits: int = 5, echo: bool = True):
        super().__init__()
        self.max_minutes, self.digits, self.echo = max_minutes, digits, echo
        self.epochs: list[dict] = []
        self.start = None

    def on_train_begin(self, logs=None):
        if self.start is None:  # one budget over every fit the clock is passed to
            self.start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self._epoch_start
        row = {"epoch": epoch + 1, "seconds": round(took, 1), **{k: round(float(v), self.digits) for k, v in (logs or {}).items()}}
        self.epochs.append(row)
        if self.echo:
            print(json.dumps(row), flush=True)
        estimate = took if epoch else 0.0
        if self.max_minutes and time.perf_counter() - self.start + estimate > 60 * self.max_minutes:
            print(f"stopping: the next epoch would overrun --max-minutes {self.max_minutes}", flush=True)
            self.model.stop_training = True

    @property
    def seconds(self) -> list[float]:
        """Each epoch's wall time, in order."""
        return [row["seconds"] for row in self.epochs]
