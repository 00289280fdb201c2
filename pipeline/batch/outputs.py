"""The output of a batch job: one JSONL or TSV line per input row, answers and error rows alike."""

from __future__ import annotations

import json

import numpy as np

from ..errors import BatchError
from .runner import Runner
from .tsv import escape_cell
from .workers import _encode_texts

OUTPUT_FORMATS = ("jsonl", "tsv")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _tsv_cell(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=_json_default)
    return escape_cell(value)


class RowFormatter:
    """Turns ``(file, line, text, answer, error)`` into one output line (JSONL or TSV).

    Args:
        output_format: ``jsonl`` or ``tsv``.
        include_text: also write the input text in a ``text`` field.
        keys: the answer fields (the TSV columns between ``line`` / ``text`` and ``error``).
    """

    def __init__(self, output_format: str = "jsonl", include_text: bool = False, keys=()):
        if output_format not in OUTPUT_FORMATS:
            raise BatchError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}; got {output_format!r}")
        self.output_format = output_format
        self.include_text = include_text
        self.keys = list(keys)

    def header(self) -> str:
        if self.output_format != "tsv":
            return ""
        columns = ["file", "line"] + (["text"] if self.include_text else []) + self.keys + ["error"]
        return "\t".join(columns) + "\n"

    def format(self, path, lineno, text, answer, error) -> str:
        if self.output_format == "jsonl":
            row = {"file": path, "line": lineno}
            if self.include_text:
                row["text"] = text
            if error is not None:
                row["error"] = error
            else:
                row.update(answer)
            return json.dumps(row, ensure_ascii=False, default=_json_default) + "\n"
        cells = [_tsv_cell(path), str(lineno)]
        if self.include_text:
            cells.append(_tsv_cell(text))
        if error is not None:
            cells.extend([""] * len(self.keys))
            cells.append(_tsv_cell(error))
        else:
            if self.keys == ["prediction"]:
                cells.append(_tsv_cell(answer))
            else:
                extra = set(answer) - set(self.keys)
                if extra:
                    raise RuntimeError(f"The pipeline answered with fields {sorted(extra)} missing from the TSV header")
                cells.extend(_tsv_cell(answer.get(k)) for k in self.keys)
            cells.append("")
        return "\t".join(cells) + "\n"


def process_chunk(rows, runner: Runner, formatter: RowFormatter, encoded=None) -> tuple[list[str], list]:
    """Predict one chunk of rows; returns ``(output lines, errors)``: one line per row, and per
    row its error message or None.

    Args:
        rows: ``(file, line, text, error)`` tuples.
        runner: the Runner.
        formatter: the RowFormatter.
        encoded: the already-encoded texts of the predictable rows as ``(results, errors)``
            (from a worker pool), or None to encode here.
    """
    wanted = predictable_rows(rows)
    if encoded is None:
        encoded = _encode_texts(runner.encode, [rows[i][2] for i in wanted])
    results, encode_errors = encoded
    errors = {}
    keep, keep_results = [], []
    for j, i in enumerate(wanted):
        if j in encode_errors:
            errors[i] = f"{rows[i][0]}:{rows[i][1]}: {encode_errors[j]}"
        else:
            keep.append(i)
            keep_results.append(results[j])
    answers, predict_errors = runner.predict(keep_results) if keep_results else ([], {})
    by_row = {}
    for j, i in enumerate(keep):
        if j in predict_errors:
            errors[i] = f"{rows[i][0]}:{rows[i][1]}: {predict_errors[j]}"
        else:
            by_row[i] = answers[j]
    lines, row_errors = [], []
    for i, (path, lineno, text, error) in enumerate(rows):
        if error is None and i not in by_row:
            error = errors[i]  # every row sent to the model has an answer or an error
        row_errors.append(error)
        lines.append(formatter.format(path, lineno, text, by_row.get(i), error))
    return lines, row_errors


def predictable_rows(rows) -> list[int]:
    """Indices of the rows of a chunk that go to the model."""
    return [i for i, row in enumerate(rows) if row[3] is None]
