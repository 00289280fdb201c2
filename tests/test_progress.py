"""Tests of pipeline.progress."""

import io

from pipeline.progress import Progress, format_duration


def test_format_duration_uses_hours_only_when_needed():
    assert format_duration(65) == "1:05"
    assert format_duration(3725) == "1:02:05"


def test_progress_shows_bar_rate_and_eta_when_the_total_is_known():
    out = io.StringIO()
    bar = Progress(total=200, stream=out, interval=0)
    bar._t0 -= 10  # ten seconds in
    bar.update(rows=1000, position=50)
    line = out.getvalue()
    assert "25%" in line and "1,000 rows" in line and "100 rows/s" in line and "ETA 0:30" in line


def test_progress_shows_a_counter_when_the_total_is_unknown():
    out = io.StringIO()
    bar = Progress(total=None, stream=out, interval=0)
    bar.update(rows=7)
    assert "7 rows" in out.getvalue() and "ETA" not in out.getvalue() and "%" not in out.getvalue()


def test_progress_draws_nothing_when_disabled():
    out = io.StringIO()
    bar = Progress(total=10, enabled=False, stream=out, interval=0)
    bar.update(rows=5, position=5)
    bar.close()
    assert out.getvalue() == ""
