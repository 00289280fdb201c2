"""A small progress display for long batch jobs: a bar with rows/s and ETA, or a row counter.

It writes one self-overwriting line to a stream (stderr by default) and redraws at most a few
times a second, so it costs nothing measurable next to the work it reports on.
"""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1:02:05'``; ``65`` -> ``'1:05'``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Reports rows done, rows per second and, when the total amount of work is known, a bar and ETA.

    Work is measured in two units: rows (what the rate counts) and an abstract "position" (bytes
    of input read) that the bar and the ETA use, since the number of rows of a corpus is not
    known before reading it but its size in bytes is.

    Args:
        total: the position at which the work is done (e.g. total input bytes), or None when
            unknown: then only a row counter and the rate are shown.
        enabled: draw anything at all.
        stream: where to draw (default ``sys.stderr``).
        interval: the least number of seconds between redraws.
        start_rows: rows already done before this run (a resumed job); they count towards the
            total but not towards the rate.
        start_position: the position already reached before this run.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> bar = Progress(total=100, stream=out, interval=0)
        >>> bar.update(rows=10, position=50)
        >>> "50%" in out.getvalue()
        True
    """

    width = 24

    def __init__(self, total=None, enabled: bool = True, stream=None, interval: float = 0.5, start_rows: int = 0, start_position: int = 0):
        self.total = total if total else None
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.start_rows = start_rows
        self.start_position = start_position
        self.rows = start_rows
        self.position = start_position
        self._t0 = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = False
        # Redrawing in place needs a terminal; a log file gets one plain line now and then.
        try:
            self._tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self._tty = False
        if not self._tty:
            self.interval = max(self.interval, 10.0) if interval else 0.0

    def update(self, rows: int, position: int | None = None, force: bool = False):
        """Record progress: ``rows`` done in all, input read up to ``position``."""
        self.rows = rows
        if position is not None:
            self.position = position
        if not self.enabled:
            return
        now = time.perf_counter()
        if force or now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The current status line."""
        elapsed = (now if now is not None else time.perf_counter()) - self._t0
        done = self.rows - self.start_rows
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.rows:,} rows  {rate:,.0f} rows/s  {format_duration(elapsed)}"
        if self.total:
            fraction = min(1.0, self.position / self.total)
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "-" * (self.width - filled)
            moved = self.position - self.start_position
            if moved > 0 and fraction < 1.0:
                eta = format_duration(elapsed * (self.total - self.position) / moved)
            else:
                eta = "--:--" if fraction < 1.0 else "0:00"
            text = f"[{bar}] {fraction:4.0%}  {text}  ETA {eta}"
        return text

    def _draw(self, text: str):
        try:
            if self._tty:
                self.stream.write("\r" + text + "\x1b[K")
                self._drawn = True
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False  # the stream went away; the job itself goes on

    def close(self):
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(self.line())
        if self._drawn:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
