"""Batch prediction over text corpora: streaming, parallel, length-bucketed and resumable.

``predict_files`` (and ``ktp predict``) runs a saved pipeline over text files of any size:

- **Streaming.** Input rows are read lazily from plain text, JSONL, TSV or CSV files (and
  CoNLL files for tagging pipelines), gzip or not, given as files, folders or glob patterns, and
  handled ``chunk_size`` rows at a time, so memory depends on the chunk size and not on the
  corpus size.
- **One output row per input row**, in input order, each naming its source ``file`` and
  ``line``. Rows that cannot be predicted (undecodable bytes, a malformed JSON line, a file cut
  short, an unreadable file) become rows with an ``error`` field; nothing is dropped.
- **Fast on one machine.** Tokenisation runs in a pool of worker processes while the model
  works on the previous chunk (the main process helps when it would otherwise wait); within a
  chunk, rows are sorted by length so each batch carries little padding, and the answers are
  put back in input order.
- **Resumable.** Every finished chunk is appended to the output and recorded in a small
  manifest next to it (``OUTPUT.ktp-resume.json``); a run killed at any point and restarted
  with ``resume=True`` continues after the last recorded chunk and ends with the same output
  as an uninterrupted run.

The job itself (``predict_files``) is here; its parts are modules of this package: ``inputs``
(files to rows), ``workers`` (the tokenizer pool), ``runner`` (model calls), ``outputs`` (rows
to JSONL / TSV lines, with the cell codec in ``tsv``), ``resume`` (lock, manifest and the
checks of a rerun) and ``command`` (``ktp predict``).

Example:
    >>> from pipeline.batch import predict_files
    >>> summary = predict_files("saved_models/sentiment", ["reviews/*.txt.gz"], "out.jsonl")  # doctest: +SKIP
    >>> summary["rows"], summary["errors"]  # doctest: +SKIP
    (200000, 0)
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import sys
import time

from ..errors import BatchError, DataError, KtpError
from ..progress import Progress
from .command import add_predict_arguments, format_summary, main, predict_command
from .inputs import (
    DEFAULT_CHUNK_SIZE,
    EXTENSION_FORMATS,
    INPUT_FORMATS,
    _chunked,
    _conll_reader,
    _Position,
    detect_format,
    iter_rows,
    read_options_for,
    resolve_inputs,
)
from .outputs import OUTPUT_FORMATS, RowFormatter, predictable_rows, process_chunk
from .resume import (
    LOCK_SUFFIX,
    MANIFEST_SUFFIX,
    MANIFEST_VERSION,
    OutputLock,
    _check_manifest,
    _check_output,
    _fingerprint,
    _input_identity,
    _model_identity,
    _without_own_files,
    _write_json_atomic,
    manifest_path,
)
from .runner import LENGTH_STEP, Runner
from .tsv import escape_cell, unescape_cell
from .workers import _Encoder, default_workers

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EXTENSION_FORMATS",
    "INPUT_FORMATS",
    "LENGTH_STEP",
    "LOCK_SUFFIX",
    "MANIFEST_SUFFIX",
    "MANIFEST_VERSION",
    "OUTPUT_FORMATS",
    "PREFETCH",
    "BatchError",
    "DataError",
    "KtpError",
    "OutputLock",
    "RowFormatter",
    "Runner",
    "add_predict_arguments",
    "default_workers",
    "detect_format",
    "escape_cell",
    "format_summary",
    "iter_rows",
    "main",
    "manifest_path",
    "predict_command",
    "predict_files",
    "predictable_rows",
    "process_chunk",
    "read_options_for",
    "resolve_inputs",
    "unescape_cell",
]

log = logging.getLogger("ktp")

#: Chunks handed to the tokenizer pool ahead of the one the model is working on.
PREFETCH = 2


def _load(model):
    from ..core import Pipeline

    if isinstance(model, (str, os.PathLike)):
        return Pipeline.load(os.fspath(model)), os.fspath(model)
    if not hasattr(model, "predict_tokens"):
        raise TypeError(f"Expected a saved pipeline folder or a Pipeline, got {type(model).__name__}")
    return model, None


def predict_files(
    model,
    inputs,
    output: str,
    *,
    output_format: str | None = None,
    format: str | None = None,
    text_column=None,
    header: bool | None = None,
    encoding: str | None = None,
    include_text: bool = False,
    batch_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    workers: int | None = None,
    bucketing: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    progress_stream=None,
) -> dict:
    """Predict every row of ``inputs`` with a saved pipeline and write one output row per input row.

    Args:
        model: a saved pipeline folder, or a fitted Pipeline.
        inputs: a path, folder or glob pattern, or a list of them.
        output: the output file (``.tsv`` gives TSV unless ``output_format`` says otherwise).
        output_format: ``jsonl`` or ``tsv`` (default: from the output's extension, else JSONL).
        format: input format: ``auto`` (by extension; unknown extensions read as plain text),
            ``text`` (one text a line), ``jsonl``, ``tsv``, ``csv`` or ``conll``.
        text_column: the JSON key or TSV / CSV column (name or 0-based number) holding the
            text (default: the pipeline's ``data.text_column``).
        header: whether TSV / CSV files start with a header row (default: ``data.header``).
        encoding: input encoding (default: ``data.encoding``).
        include_text: copy each input text into its output row.
        batch_size: rows per model call (default: ``training.predict_batch_size``).
        chunk_size: rows read, tokenized and committed together; memory use grows with it.
        workers: tokenizer processes (default: the CPUs available; 0 tokenizes in this process).
        bucketing: sort rows by length within each chunk so batches need little padding.
        resume: continue a killed run from its manifest.
        overwrite: replace an existing output.
        progress: draw a progress line on ``progress_stream`` (default: only on a terminal).
        progress_stream: where progress goes (default: stderr).

    Returns:
        A summary dict: ``rows``, ``errors``, ``predicted``, ``files``, ``file_errors``,
        ``files_cut_short``, ``blank_lines_skipped``, ``seconds`` (all of it),
        ``rows_per_second`` (rows predicted in this run over the time after loading the
        model), ``resumed_rows``, ``output``, ``error_examples`` (the first few error
        messages) and ``timings`` (seconds the main process spent loading, reading, waiting
        for tokenizers, predicting and writing).

    Raises:
        BatchError: the output exists (without ``overwrite`` / ``resume``), the resume manifest
            does not match these settings, or an argument is invalid.
        FileNotFoundError: an input matches no file.
    """
    t0 = time.perf_counter()
    output, output_format = _checked_arguments(output, output_format, chunk_size, batch_size, resume, overwrite)
    manifest_file = manifest_path(output)
    files = _without_own_files(resolve_inputs(inputs), output, manifest_file)
    with OutputLock(output):
        return _predict_locked(
            model, files, output, manifest_file, t0,
            output_format=output_format, format=format, text_column=text_column, header=header,
            encoding=encoding, include_text=include_text, batch_size=batch_size, chunk_size=chunk_size,
            workers=workers, bucketing=bucketing, resume=resume, overwrite=overwrite, progress=progress,
            progress_stream=progress_stream,
        )


def _checked_arguments(output, output_format, chunk_size, batch_size, resume, overwrite) -> tuple[str, str]:
    """Check ``predict_files``'s own arguments; returns the output path and format."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise BatchError(f"chunk_size must be an integer >= 1; got {chunk_size!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise BatchError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    if resume and overwrite:
        raise BatchError("Give either resume or overwrite, not both")
    output = os.fspath(output)
    output_format = output_format or ("tsv" if output.endswith((".tsv", ".tsv.gz")) else "jsonl")
    if output_format not in OUTPUT_FORMATS:
        raise BatchError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}; got {output_format!r}")
    if output.endswith(".gz"):
        raise BatchError(f"{output}: compressed output is not supported (it could not be resumed); write plain text and gzip it afterwards")
    return output, output_format


def _predict_locked(model, files, output, manifest_file, t0, *, output_format, format, text_column, header,
                    encoding, include_text, batch_size, chunk_size, workers, bucketing, resume, overwrite,
                    progress, progress_stream):
    """``predict_files`` once the output's lock is held."""
    state = _check_output(output, manifest_file, resume, overwrite)

    pipeline, model_dir = _load(model)
    t_loaded = time.perf_counter()
    read_options = read_options_for(pipeline, format, text_column, header, encoding)
    runner = Runner(pipeline, batch_size=batch_size, bucketing=bucketing)
    if workers is None:
        workers = default_workers()
    if workers < 0:
        raise BatchError(f"workers must be >= 0; got {workers}")
    keys = runner.output_keys() if output_format == "tsv" else []
    formatter = RowFormatter(output_format, include_text, keys)
    settings = {
        "model": _model_identity(pipeline, model_dir),
        "inputs": _input_identity(files),
        "read_options": read_options,
        "output_format": output_format,
        "include_text": include_text,
        "chunk_size": chunk_size,
        "batch_size": runner.batch_size,
        "bucketing": bucketing,
    }
    fingerprint = _fingerprint(settings)
    if state is not None and state.get("chunks_done", 0) == 0:
        # A run killed before its first chunk was committed: nothing to keep, start afresh.
        state = None
    if state is not None:
        _check_manifest(state, fingerprint, settings, manifest_file)

    out = _Output(output, manifest_file, fingerprint, settings, state)
    resumed_rows = out.rows_done
    out.open(state, formatter.header())
    position = _Position()
    file_stats = collections.Counter()
    rows = iter_rows(files, read_options, position, file_stats, _conll_reader(pipeline))
    if resumed_rows:
        # Skip what the killed run committed (re-reading is cheap next to predicting, and
        # works for gzip files, which cannot seek).
        rows = itertools.islice(rows, resumed_rows, None)
    total_bytes = sum(s for _, s, _ in settings["inputs"] if s) or None
    bar = Progress(
        total=total_bytes,
        enabled=_want_progress(progress, progress_stream),
        stream=progress_stream,
        start_rows=resumed_rows,
        start_position=state.get("position", 0) if state else 0,
    )
    timings = _run_chunks(_chunked(rows, chunk_size), position, runner, formatter, _Encoder(runner.encode, workers), out, bar)
    out.close()
    bar.update(out.rows_done, total_bytes, force=True)
    bar.close()
    os.remove(manifest_file)

    for key in ("files", "file_errors", "files_cut_short", "blank_lines_skipped"):
        out.counts[key] += file_stats[key]
    timings["load"] = t_loaded - t0
    return {
        **_summary(out.counts, len(files), t0, t_loaded, out.rows_done - resumed_rows),
        "resumed_rows": resumed_rows,
        "output": output,
        "output_format": output_format,
        "workers": workers,
        "chunk_size": chunk_size,
        "batch_size": runner.batch_size,
        "error_examples": out.error_examples,
        # Where the main process spent its time (tokenizing happens in the workers meanwhile).
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _summary(counts, n_files, t0, t_loaded, new_rows) -> dict:
    """The counts and speed of a finished job (the first keys of ``predict_files``'s summary)."""
    seconds = time.perf_counter() - t0
    working = time.perf_counter() - t_loaded
    return {
        "rows": counts["rows"],
        "errors": counts["errors"],
        "predicted": counts["rows"] - counts["errors"],
        "files": n_files,
        "file_errors": counts["file_errors"],
        "files_cut_short": counts["files_cut_short"],
        "blank_lines_skipped": counts["blank_lines_skipped"],
        "seconds": round(seconds, 3),
        # The rate leaves out loading the model: it is what a bigger corpus would see.
        "rows_per_second": round(new_rows / working, 1) if working > 0 else None,
    }


class _Output:
    """The output file and its resume manifest, which records the chunks committed to it.

    Args:
        path: the output file.
        manifest_file: its manifest.
        fingerprint: the fingerprint of ``settings``.
        settings: the job's settings, recorded in the manifest.
        state: the manifest of the run to resume, or None for a fresh run.
    """

    def __init__(self, path, manifest_file, fingerprint, settings, state):
        self.path = path
        self.manifest_file = manifest_file
        self.fingerprint = fingerprint
        self.settings = settings
        self.counts = collections.Counter(state["counts"]) if state else collections.Counter()
        self.chunks_done = state["chunks_done"] if state else 0
        self.rows_done = state["rows_done"] if state else 0
        self.error_examples = list(state.get("error_examples", [])) if state else []
        self.bytes_done = 0
        self.file = None

    def manifest(self, position) -> dict:
        return {
            "version": MANIFEST_VERSION,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "chunks_done": self.chunks_done,
            "rows_done": self.rows_done,
            "bytes_done": self.bytes_done,
            "position": position,
            "counts": dict(self.counts),
            "error_examples": self.error_examples,
        }

    def open(self, state, header: str) -> None:
        """Open the output to append to: after the last recorded chunk of ``state``, or afresh
        with ``header`` (after writing a manifest with no chunk done)."""
        try:
            if state:
                self.file = open(self.path, "r+b")  # noqa: SIM115  (open for the whole run)
                self.file.truncate(state["bytes_done"])  # drop a chunk that was written but not recorded
                self.file.seek(state["bytes_done"])
                self.bytes_done = self.file.tell()
            else:
                head = header.encode("utf-8")
                self.bytes_done = len(head)
                # The manifest comes first, so a run killed at any point from here on (even
                # before its output exists, or while an old output is still there) resumes: a
                # manifest with no chunk done means "start again".
                _write_json_atomic(self.manifest_file, self.manifest(0))
                self.file = open(self.path, "wb")  # noqa: SIM115  (open for the whole run)
                self.file.write(head)
                self.file.flush()
                os.fsync(self.file.fileno())
        except OSError as err:
            raise _write_error(self.path, err) from None

    def commit(self, chunk_lines, chunk_errors, n_rows, position) -> None:
        """Append one chunk's lines, then record them in the manifest."""
        data = "".join(chunk_lines).encode("utf-8")
        try:
            self.file.write(data)
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as err:
            # The manifest still records the chunks before this one; --resume drops the rest.
            raise _write_error(self.path, err) from None
        self.bytes_done += len(data)
        self.chunks_done += 1
        self.rows_done += n_rows
        self.counts["rows"] += n_rows
        self.counts["errors"] += len(chunk_errors)
        self.error_examples.extend(chunk_errors[: max(0, 10 - len(self.error_examples))])
        try:
            _write_json_atomic(self.manifest_file, self.manifest(position))
        except OSError as err:
            raise _write_error(self.manifest_file, err) from None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as err:
            raise _write_error(self.path, err) from None

    def close_quietly(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # already failing: the first error is the one to report


def _run_chunks(chunks, position, runner, formatter, encoder, out, bar) -> collections.Counter:
    """Tokenize, predict and commit every chunk, the pool tokenizing up to PREFETCH chunks
    ahead while the model works; returns the seconds the main process spent on each part."""
    timings = collections.Counter()
    try:
        pending = collections.deque()
        while True:
            t = time.perf_counter()
            chunk = next(chunks, None)
            timings["read"] += time.perf_counter() - t
            if chunk is None:
                break
            wanted = predictable_rows(chunk)
            handle = encoder.submit([chunk[i][2] for i in wanted])
            pending.append((chunk, handle, position()))
            while len(pending) > PREFETCH:
                _finish(pending.popleft(), runner, formatter, encoder, out, bar, timings)
        while pending:
            _finish(pending.popleft(), runner, formatter, encoder, out, bar, timings)
        encoder.close()
    except BaseException:
        encoder.terminate()
        out.close_quietly()
        raise
    return timings


def _finish(item, runner, formatter, encoder, out, bar, timings):
    chunk, handle, position_now = item
    t0 = time.perf_counter()
    encoded = encoder.collect(handle)
    t1 = time.perf_counter()
    lines, row_errors = process_chunk(chunk, runner, formatter, encoded)
    t2 = time.perf_counter()
    out.commit(lines, [e for e in row_errors if e is not None], len(chunk), position_now)
    t3 = time.perf_counter()
    timings["wait_for_tokenizers"] += t1 - t0
    timings["predict"] += t2 - t1
    timings["write"] += t3 - t2
    bar.update(out.rows_done, position_now)


def _write_error(path, err: OSError) -> BatchError:
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return BatchError(
        f"Cannot write {path}: {reason}. The chunks finished before this one are saved: fix the cause "
        "(e.g. free disk space) and rerun with --resume"
    )


def _want_progress(progress, stream):
    if progress is not None:
        return bool(progress)
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
