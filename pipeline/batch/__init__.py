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

Example:
    >>> from pipeline.batch import predict_files
    >>> summary = predict_files("saved_models/sentiment", ["reviews/*.txt.gz"], "out.jsonl")  # doctest: +SKIP
    >>> summary["rows"], summary["errors"]  # doctest: +SKIP
    (200000, 0)
"""

from __future__ import annotations

import argparse
import codecs
import collections
import glob
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None

import numpy as np

from .. import readers
from ..errors import BatchError, DataError, KtpError
from ..progress import Progress

log = logging.getLogger("ktp")

#: Input formats ``format="auto"`` chooses between, by file extension (after ``.gz``).
EXTENSION_FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".tsv": "tsv",
    ".csv": "csv",
    ".conll": "conll",
    ".bio": "conll",
    ".bmes": "conll",
}
INPUT_FORMATS = ("auto", "text", "jsonl", "tsv", "csv", "conll")
OUTPUT_FORMATS = ("jsonl", "tsv")
DEFAULT_CHUNK_SIZE = 2048
MANIFEST_SUFFIX = ".ktp-resume.json"
LOCK_SUFFIX = ".lock"
MANIFEST_VERSION = 1
# Padded lengths are rounded up to a multiple of this so the model sees few distinct shapes
# (each new shape can cost a retrace) while padding stays small.
LENGTH_STEP = 8
#: Chunks handed to the tokenizer pool ahead of the one the model is working on.
PREFETCH = 2


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def resolve_inputs(inputs) -> list[str]:
    """Expand input specs (files, folders, glob patterns) into an ordered list of files.

    Folders are walked recursively in sorted order, skipping hidden files and folders; glob
    patterns (``*``, ``?``, ``[...]``, ``**``) are expanded and sorted. Duplicates are kept
    once, at their first place.

    Raises:
        FileNotFoundError: a path that does not exist or a pattern that matches no file.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for spec in inputs:
        spec = os.fspath(spec)
        if os.path.isdir(spec):
            found = []
            for root, dirs, names in os.walk(spec):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith("."))
            if not found:
                raise FileNotFoundError(f"Input folder {spec} holds no files")
            files.extend(found)
        elif glob.has_magic(spec):
            found = sorted(f for f in glob.glob(spec, recursive=True) if not os.path.isdir(f))
            if not found:
                raise FileNotFoundError(f"Input pattern {spec!r} matches no files")
            files.extend(found)
        elif os.path.lexists(spec):
            files.append(spec)
        else:
            raise FileNotFoundError(f"Input {spec} does not exist (give files, folders or glob patterns)")
    seen = set()
    unique = []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique


def detect_format(path: str, default: str = "text") -> str:
    """The input format of ``path`` from its extension (``.gz`` looked through)."""
    name = path[:-3] if path.endswith(".gz") else path
    return EXTENSION_FORMATS.get(os.path.splitext(name)[1].lower(), default)


class _Position:
    """Bytes of input read so far, across files (compressed bytes for gzip files)."""

    def __init__(self):
        self.done = 0  # bytes of the files already finished
        self.file = None  # the raw file object being read

    def __call__(self) -> int:
        current = 0
        if self.file is not None:
            try:
                current = self.file.tell()
            except (OSError, ValueError):
                current = 0
        return self.done + current


def _error_row(path, lineno, message):
    return (path, lineno, None, message)


def _read_lines(path, encoding, position, stats):
    """Yield ``(line_number, line)`` of one file (``readers.open_text_lines``: lines end at
    ``\n``, ``\r\n`` or ``\r``); a line that cannot be decoded, or the point where a file stops
    being readable (truncated gzip, I/O error), is yielded as a ``readers._BadLine`` holding a
    DataError so the row parsers pass it on as an error row."""

    def opened(raw):
        position.file = raw

    lines = readers.open_text_lines(path, encoding, report_errors=True, hint=_ENCODING_HINT, on_open=opened)
    for lineno, line in lines:
        if isinstance(line, DataError):
            if getattr(line, "cut_short", False):
                stats["files_cut_short"] += 1
            line = readers._BadLine(line)
        yield lineno, line


_ENCODING_HINT = "fix or re-encode the line, or give the file's encoding with --encoding"


def iter_rows(files, read_options: dict, position=None, stats=None, conll_reader=None):
    """Yield one ``(file, line, text, error)`` row per input row of ``files``, in order.

    ``text`` is the string to predict (a list of tokens for CoNLL input), or None when
    ``error`` (a message naming file and line) says why the row cannot be predicted. A file
    that cannot be opened gives one error row with line 0.

    Args:
        files: paths, as from ``resolve_inputs``.
        read_options: ``format`` (``auto`` or one of ``INPUT_FORMATS``), ``text_column``,
            ``header`` and ``encoding``.
        position: a ``_Position`` to keep up to date (progress by bytes), or None.
        stats: a Counter for ``files``, ``file_errors``, ``blank_lines_skipped`` and
            ``files_cut_short``, or None.
        conll_reader: ``callable(path) -> iterable of (line, tokens, error)`` for CoNLL
            files (from the tagging pipeline's reader), or None.
    """
    position = position if position is not None else _Position()
    stats = stats if stats is not None else collections.Counter()
    fmt_option = read_options.get("format", "auto")
    encoding = read_options.get("encoding", "utf-8")
    for path in files:
        stats["files"] += 1
        fmt = detect_format(path) if fmt_option == "auto" else fmt_option
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        try:
            if fmt == "conll":
                if conll_reader is None:
                    raise DataError(
                        f"{path}: CoNLL input needs a sequence-tagging pipeline that reads CoNLL files "
                        "(this pipeline has no CoNLL reader); give plain text, JSONL, TSV or CSV instead"
                    )
                for lineno, tokens, error in conll_reader(path):
                    yield (path, lineno, None, error) if error else (path, lineno, tokens, None)
                continue
            lines = _read_lines(path, encoding, position, stats)
            options = {
                "format": fmt,
                "text_column": read_options.get("text_column", "text"),
                "header": read_options.get("header", True),
            }
            parser = {
                "text": readers._iter_text,
                "jsonl": readers._iter_jsonl,
                "tsv": readers._iter_delimited,
                "csv": readers._iter_delimited,
            }[fmt]
            for lineno, text, err in parser(path, lines, options, False, stats):
                if text is None:
                    yield _error_row(path, lineno, str(err))
                else:
                    yield (path, lineno, text, None)
        except (OSError, EOFError, zlib.error, DataError) as err:
            # Unreadable file (permissions, a broken link...) or a file-level format problem
            # (e.g. the text column is not in its header): one error row, then the next file.
            stats["file_errors"] += 1
            message = str(err)
            if isinstance(err, (OSError, EOFError, zlib.error)):
                message = f"{path}: cannot read the file: {getattr(err, 'strerror', None) or err or type(err).__name__}"
            yield _error_row(path, getattr(err, "lineno", None) or 0, message)
        finally:
            position.done += size
            position.file = None


def _chunked(rows, size):
    while True:
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        yield chunk


# --------------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------------
_WORKER_ENCODE = None


def _die_with_parent():
    # A killed parent must not leave tokenizer workers behind (they would wait forever on the
    # task pipe, whose write end they inherited). Linux only; elsewhere the pool's own
    # clean-up handles ordinary exits.
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _init_worker(encode, parent_pid):
    global _WORKER_ENCODE
    _WORKER_ENCODE = encode
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if os.getppid() != parent_pid:
        os._exit(1)


def _encode_texts(encode, texts):
    """Encode texts, isolating failures: returns ``(results, {index: error message})``."""
    try:
        return encode(texts), {}
    except Exception:  # noqa: BLE001  (one bad text must not sink its neighbours)
        results, errors = [], {}
        for i, text in enumerate(texts):
            try:
                results.append(encode([text])[0])
            except Exception as err:  # noqa: BLE001
                results.append(None)
                errors[i] = f"tokenization failed: {type(err).__name__}: {err}"
        return results, errors


def _worker_encode(texts):
    return _encode_texts(_WORKER_ENCODE, texts)


def _picklable(obj) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
        return True
    except Exception:  # noqa: BLE001
        return False


class _Immediate:
    """Encoding done in this process, behind the same ``get()`` as the pool's handles."""

    def __init__(self, fn, *args):
        self._fn, self._args = fn, args

    def get(self):
        return [self._fn(*self._args)]


class _Pending:
    """The futures of one chunk's pieces, and the pieces, so this process can take over any
    piece no worker has started when it needs the results (it would only wait otherwise)."""

    def __init__(self, futures, pieces, encode):
        self.futures = futures
        self.pieces = pieces
        self.encode = encode

    def get(self):
        results = [None] * len(self.futures)
        try:
            # Workers take pieces from the front; this process helps from the back.
            for i in reversed(range(len(self.futures))):
                if self.futures[i].cancel():
                    results[i] = _encode_texts(self.encode, self.pieces[i])
            for i, future in enumerate(self.futures):
                if results[i] is None:
                    results[i] = future.result()
        except BrokenProcessPool:
            raise BatchError(
                "A tokenizer worker process died (killed, or out of memory?). The chunks finished so far "
                "are saved: rerun with --resume, perhaps with fewer --workers or a smaller --chunk-size"
            ) from None
        return results


class _Encoder:
    """Runs the pipeline's pure-Python encoding (tokenisation) in a process pool, or inline.

    A ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: if a worker dies, the
    waiting chunk fails with an error instead of waiting forever.
    """

    def __init__(self, encode, workers: int, pieces_per_worker: int = 4):
        self.encode = encode
        self.workers = workers
        self.pieces = max(1, workers * pieces_per_worker)
        self.pool = None
        if workers > 0:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            if method != "fork" and not _picklable(encode):
                log.warning("This pipeline's tokenizer cannot be sent to worker processes here; tokenizing in the main process")
                self.workers = 0
                return
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context(method),
                initializer=_init_worker,
                initargs=(encode, os.getpid()),
            )

    def submit(self, texts):
        """Start encoding ``texts``; returns a handle whose ``get()`` gives the results."""
        if self.pool is None or not texts:
            return _Immediate(_encode_texts, self.encode, texts)
        step = max(1, math.ceil(len(texts) / self.pieces))
        pieces = [texts[i: i + step] for i in range(0, len(texts), step)]
        return _Pending([self.pool.submit(_worker_encode, piece) for piece in pieces], pieces, self.encode)

    @staticmethod
    def collect(handle):
        """Join a handle's pieces: ``(results, {index: error})``."""
        results, errors = [], {}
        for part, part_errors in handle.get():
            for i, message in part_errors.items():
                errors[len(results) + i] = message
            results.extend(part)
        return results, errors

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None

    def terminate(self):
        if self.pool is not None:
            processes = list((getattr(self.pool, "_processes", None) or {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join(timeout=5)
            self.pool = None


# --------------------------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------------------------
class _TokenizeToIds:
    """Tokenizer + vocabulary lookup, for worker processes (picklable: stage objects only)."""

    def __init__(self, tokenizer, vocabulary):
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary

    def __call__(self, texts):
        return self.vocabulary.transform(self.tokenizer.transform(texts))


class _PipelineTokenize:
    """The pipeline's own ``tokenize``, for pipelines without a single tokenizer stage."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def __call__(self, texts):
        return self.pipeline.tokenize(texts)


class Runner:
    """How one pipeline encodes texts (in workers) and predicts encoded rows (in this process).

    The generic runner tokenizes with ``pipeline.tokenize`` and predicts with
    ``pipeline.predict_tokens`` on length-sorted batches. Classification pipelines whose
    vectorizer masks padding get a faster path: workers also look tokens up in the vocabulary,
    and each batch is padded only to its own longest row (rounded up to a multiple of 8), which
    gives the same answers because padded steps are masked.

    Args:
        pipeline: a fitted Pipeline.
        batch_size: rows per model call (default: the pipeline's ``training.predict_batch_size``).
        bucketing: sort rows by length within a chunk before batching.
    """

    def __init__(self, pipeline, batch_size: int | None = None, bucketing: bool = True):
        pipeline.check_fitted()
        self.pipeline = pipeline
        self.batch_size = batch_size or pipeline.training.get("predict_batch_size", 256)
        self.bucketing = bucketing
        self.requires_text = bool(getattr(pipeline, "requires_text", False))
        self.fast = self._fast_path_possible(pipeline)
        if self.fast:
            self.encode = _TokenizeToIds(pipeline.stage("tokenizer"), pipeline.stage("vocabulary"))
            vectorizer = pipeline.stage("vectorizer")
            self._vectorizer = vectorizer
            self._trim = bool(getattr(vectorizer, "mask", False))
            self._model = pipeline.stage("model").model_
            self._decoder = pipeline.stage("decoder")
        else:
            self.encode = self._tokenize_function(pipeline)

    @staticmethod
    def _fast_path_possible(pipeline) -> bool:
        from ..classification import ClassificationPipeline

        if not isinstance(pipeline, ClassificationPipeline):
            return False
        # Only when tokenize / encode / predict are the family's own plain stage chain.
        cls = type(pipeline)
        if any(getattr(cls, n) is not getattr(ClassificationPipeline, n) for n in ("tokenize", "encode_tokens", "predict_tokens")):
            return False
        return getattr(pipeline.stage("model"), "model_", None) is not None

    @staticmethod
    def _tokenize_function(pipeline):
        from ..classification import ClassificationPipeline

        tokenizers = [s for s in pipeline.stages.values() if getattr(s, "kind", None) == "tokenizer"]
        if isinstance(pipeline, ClassificationPipeline) and type(pipeline).tokenize is ClassificationPipeline.tokenize:
            return tokenizers[0].transform  # a stage object: cheap to send to any worker
        # Other families tokenize their own way (token lists from CoNLL files included). The
        # worker pool is forked on Linux, so the pipeline is inherited, not pickled.
        return _PipelineTokenize(pipeline)

    # -- prediction ---------------------------------------------------------------------------
    def predict(self, encoded: list) -> tuple[list, dict]:
        """Answers for encoded rows, in their order: ``(answers, {index: error message})``."""
        n = len(encoded)
        order = sorted(range(n), key=lambda i: len(encoded[i])) if self.bucketing else list(range(n))
        answers = [None] * n
        errors = {}
        for start in range(0, n, self.batch_size):
            idx = order[start: start + self.batch_size]
            batch = [encoded[i] for i in idx]
            try:
                out = self._predict_batch(batch)
            except Exception:  # noqa: BLE001  (find the rows at fault, keep the others)
                out = []
                for i, row in zip(idx, batch):
                    try:
                        out.append(self._predict_batch([row])[0])
                    except Exception as err:  # noqa: BLE001
                        out.append(None)
                        errors[i] = f"prediction failed: {type(err).__name__}: {err}"
            for i, answer in zip(idx, out):
                if i not in errors:
                    answers[i] = answer
        return answers, errors

    def _predict_batch(self, batch) -> list:
        if not self.fast:
            return self.pipeline.predict_tokens(batch, batch_size=len(batch))
        x = self._vectorizer.transform(batch)
        if self._trim and x.shape[1] > 1:
            longest = max((len(ids) for ids in batch), default=1)
            length = min(x.shape[1], max(LENGTH_STEP, -(-longest // LENGTH_STEP) * LENGTH_STEP))
            if length < x.shape[1]:
                x = x[:, :length] if self._vectorizer.padding == "post" else x[:, x.shape[1] - length:]
        x = np.ascontiguousarray(x)
        scores = np.asarray(self._model.predict_on_batch(x))
        return self._decoder.decode(scores)

    def output_keys(self) -> list[str]:
        """The keys of an answer, from a prediction on a probe text (for the TSV header)."""
        try:
            encoded, errors = _encode_texts(self.encode, ["probe"])
            if errors:
                raise RuntimeError(errors[0])
            answers, errors = self.predict(encoded)
            if errors:
                raise RuntimeError(errors[0])
            return list(answers[0])
        except Exception as err:  # noqa: BLE001
            log.warning("Could not probe the pipeline's answer fields (%s); TSV rows hold them as JSON", err)
            return ["prediction"]


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
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
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


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
    wanted = predictable_rows(rows, runner)
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
            error = errors.get(i) or f"{path}:{lineno}: the text is empty; this pipeline needs text to predict"
        row_errors.append(error)
        lines.append(formatter.format(path, lineno, text, by_row.get(i), error))
    return lines, row_errors


def predictable_rows(rows, runner: Runner) -> list[int]:
    """Indices of the rows of a chunk that go to the model."""
    return [
        i
        for i, (_, _, text, error) in enumerate(rows)
        if error is None and not (runner.requires_text and isinstance(text, str) and not text.strip())
    ]


# --------------------------------------------------------------------------------------------
# Resume manifest
# --------------------------------------------------------------------------------------------
def manifest_path(output: str) -> str:
    return output + MANIFEST_SUFFIX


class OutputLock:
    """An advisory lock (``flock``) on ``OUTPUT.lock``, held for a whole run, so two runs never
    write the same output (and its manifest) at once: the second fails fast with a BatchError.

    The kernel drops the lock when its process dies, so a killed run leaves no lock that
    blocks the next one (a stale ``.lock`` file is taken over). Where ``fcntl`` is missing
    (Windows) runs are not locked.

    Example:
        >>> with OutputLock("/tmp/ktp-doctest-out.jsonl"):  # doctest: +SKIP
        ...     pass
    """

    def __init__(self, output: str):
        self.output = output
        self.path = output + LOCK_SUFFIX
        self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def acquire(self) -> "OutputLock":
        parent = os.path.dirname(os.path.abspath(self.output))
        if not os.path.isdir(parent):
            raise BatchError(f"The output's folder {parent} does not exist")
        if fcntl is None:
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise BatchError(f"Cannot create the lock file {self.path}: {err.strerror or err}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                raise BatchError(
                    f"Output {self.output} is being written by another run"
                    + (f" (process {holder})" if holder else "")
                    + f", which holds {self.path}; wait for it to finish, or choose another --output"
                ) from None
            # The run that held the lock may have removed the file just before we locked it:
            # then lock the file that is there now.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # still locked, so no other run is using this file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_pid(fd) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _write_json_atomic(path, data):
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def _input_identity(files) -> list:
    out = []
    for path in files:
        try:
            st = os.stat(path)
            out.append([os.path.abspath(path), st.st_size, int(st.st_mtime)])
        except OSError:
            out.append([os.path.abspath(path), None, None])
    return out


def _model_identity(pipeline, model_dir) -> str:
    if model_dir is not None:
        meta = os.path.join(model_dir, "metadata.json")
        try:
            with open(meta, "rb") as f:
                return os.path.abspath(model_dir) + ":" + hashlib.sha256(f.read()).hexdigest()[:16]
        except OSError:
            return os.path.abspath(model_dir)
    return hashlib.sha256(json.dumps(pipeline.get_config(), sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------
def default_workers() -> int:
    """Tokenizer processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _load(model):
    from ..core import Pipeline

    if isinstance(model, (str, os.PathLike)):
        return Pipeline.load(os.fspath(model)), os.fspath(model)
    if not hasattr(model, "predict_tokens"):
        raise TypeError(f"Expected a saved pipeline folder or a Pipeline, got {type(model).__name__}")
    return model, None


def read_options_for(pipeline, format=None, text_column=None, header=None, encoding=None) -> dict:
    """Input reading options: the arguments given, else the pipeline's ``data`` section."""
    data = getattr(pipeline, "data", {}) or {}
    fmt = format or "auto"
    if fmt not in INPUT_FORMATS:
        raise BatchError(f"format must be one of {', '.join(INPUT_FORMATS)}; got {fmt!r}")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise BatchError(f"encoding {encoding!r} is not a text encoding Python knows (e.g. utf-8, gbk, utf-16)") from None
    column = text_column if text_column is not None else data.get("text_column", "text")
    if isinstance(column, str) and column.isdigit():
        column = int(column)
    return {
        "format": fmt,
        "text_column": column,
        "header": data.get("header", True) if header is None else bool(header),
        "encoding": encoding or data.get("encoding", "utf-8"),
    }


def _conll_reader(pipeline):
    """A streaming CoNLL reader for tagging pipelines: ``path -> (line, tokens, error)``.

    Uses the pipeline's own ``iter_conll_tokens(path)`` when it has one, else the tagging
    family's column reader (``pipeline.conll``) with the pipeline's ``data`` options; None for
    pipelines that do not tag tokens.
    """
    hook = getattr(pipeline, "iter_conll_tokens", None)
    if callable(hook):
        return hook
    if getattr(pipeline, "task", None) != "tagging":
        return None
    try:
        from .. import conll
    except ImportError:
        return None
    iter_columns = getattr(conll, "_iter_columns", None)
    if iter_columns is None:
        return None
    options = dict(getattr(pipeline, "data", {}) or {})
    if options.get("format") not in ("conll", "char"):
        options["format"] = "conll"

    def read(path):
        for lineno, tokens, _, error in iter_columns(path, options, False):
            yield lineno, tokens, (None if error is None else str(error))

    return read


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

    counts = collections.Counter(state["counts"]) if state else collections.Counter()
    chunks_done = state["chunks_done"] if state else 0
    rows_done = state["rows_done"] if state else 0
    error_examples = list(state.get("error_examples", [])) if state else []
    resumed_rows = rows_done

    def manifest(position_now):
        return {
            "version": MANIFEST_VERSION,
            "fingerprint": fingerprint,
            "settings": settings,
            "chunks_done": chunks_done,
            "rows_done": rows_done,
            "bytes_done": bytes_done,
            "position": position_now,
            "counts": dict(counts),
            "error_examples": error_examples,
        }

    try:
        if state:
            out = open(output, "r+b")
            out.truncate(state["bytes_done"])  # drop a chunk that was written but not recorded
            out.seek(state["bytes_done"])
            bytes_done = out.tell()
        else:
            head = formatter.header().encode("utf-8")
            bytes_done = len(head)
            # The manifest comes first, so a run killed at any point from here on (even before
            # its output exists, or while an old output is still there) resumes: a manifest
            # with no chunk done means "start again".
            _write_json_atomic(manifest_file, manifest(0))
            out = open(output, "wb")
            out.write(head)
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        raise _write_error(output, err) from None

    def commit(chunk_lines, chunk_errors, n_rows, position_now):
        nonlocal bytes_done, chunks_done, rows_done
        data = "".join(chunk_lines).encode("utf-8")
        try:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        except OSError as err:
            # The manifest still records the chunks before this one; --resume drops the rest.
            raise _write_error(output, err) from None
        bytes_done += len(data)
        chunks_done += 1
        rows_done += n_rows
        counts["rows"] += n_rows
        counts["errors"] += len(chunk_errors)
        error_examples.extend(chunk_errors[: max(0, 10 - len(error_examples))])
        try:
            _write_json_atomic(manifest_file, manifest(position_now))
        except OSError as err:
            raise _write_error(manifest_file, err) from None

    position = _Position()
    file_stats = collections.Counter()
    rows = iter_rows(files, read_options, position, file_stats, _conll_reader(pipeline))
    if rows_done:
        # Skip what the killed run committed (re-reading is cheap next to predicting, and
        # works for gzip files, which cannot seek).
        rows = itertools.islice(rows, rows_done, None)
    total_bytes = sum(s for _, s, _ in settings["inputs"] if s) or None
    bar = Progress(
        total=total_bytes,
        enabled=_want_progress(progress, progress_stream),
        stream=progress_stream,
        start_rows=rows_done,
        start_position=state.get("position", 0) if state else 0,
    )
    encoder = _Encoder(runner.encode, workers)
    timings = collections.Counter()
    try:
        pending = collections.deque()
        chunks = _chunked(rows, chunk_size)
        while True:
            t = time.perf_counter()
            chunk = next(chunks, None)
            timings["read"] += time.perf_counter() - t
            if chunk is None:
                break
            wanted = predictable_rows(chunk, runner)
            handle = encoder.submit([chunk[i][2] for i in wanted])
            pending.append((chunk, handle, position()))
            # Keep the pool tokenizing up to PREFETCH chunks ahead while the model works.
            while len(pending) > PREFETCH:
                _finish(pending.popleft(), runner, formatter, encoder, commit, bar, lambda: rows_done, timings)
        while pending:
            _finish(pending.popleft(), runner, formatter, encoder, commit, bar, lambda: rows_done, timings)
        encoder.close()
    except BaseException:
        encoder.terminate()
        _close_quietly(out)
        raise
    try:
        out.close()
    except OSError as err:
        raise _write_error(output, err) from None
    bar.update(rows_done, total_bytes, force=True)
    bar.close()
    os.remove(manifest_file)

    for key in ("files", "file_errors", "files_cut_short", "blank_lines_skipped"):
        counts[key] += file_stats[key]
    seconds = time.perf_counter() - t0
    working = time.perf_counter() - t_loaded
    new_rows = rows_done - resumed_rows
    timings["load"] = t_loaded - t0
    return {
        "rows": counts["rows"],
        "errors": counts["errors"],
        "predicted": counts["rows"] - counts["errors"],
        "files": len(files),
        "file_errors": counts["file_errors"],
        "files_cut_short": counts["files_cut_short"],
        "blank_lines_skipped": counts["blank_lines_skipped"],
        "seconds": round(seconds, 3),
        # The rate leaves out loading the model: it is what a bigger corpus would see.
        "rows_per_second": round(new_rows / working, 1) if working > 0 else None,
        "resumed_rows": resumed_rows,
        "output": output,
        "output_format": output_format,
        "workers": workers,
        "chunk_size": chunk_size,
        "batch_size": runner.batch_size,
        "error_examples": error_examples,
        # Where the main process spent its time (tokenizing happens in the workers meanwhile).
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _write_error(path, err: OSError) -> BatchError:
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return BatchError(
        f"Cannot write {path}: {reason}. The chunks finished before this one are saved: fix the cause "
        "(e.g. free disk space) and rerun with --resume"
    )


def _close_quietly(f):
    try:
        f.close()
    except OSError:
        pass  # already failing: the first error is the one to report


def _finish(item, runner, formatter, encoder, commit, bar, rows_done, timings):
    chunk, handle, position_now = item
    t0 = time.perf_counter()
    encoded = encoder.collect(handle)
    t1 = time.perf_counter()
    lines, row_errors = process_chunk(chunk, runner, formatter, encoded)
    t2 = time.perf_counter()
    commit(lines, [e for e in row_errors if e is not None], len(chunk), position_now)
    t3 = time.perf_counter()
    timings["wait_for_tokenizers"] += t1 - t0
    timings["predict"] += t2 - t1
    timings["write"] += t3 - t2
    bar.update(rows_done(), position_now)


def _without_own_files(files, output, manifest_file):
    """Leave out the job's own output and manifest (an output written into an input folder)."""
    own = {os.path.abspath(p) for p in (output, manifest_file, manifest_file + ".tmp", output + LOCK_SUFFIX)}
    kept = [f for f in files if os.path.abspath(f) not in own]
    if len(kept) < len(files):
        log.info("Leaving the job's own output and manifest out of the inputs")
    if not kept:
        raise BatchError("No input files left once the output itself is left out")
    return kept


def _want_progress(progress, stream):
    if progress is not None:
        return bool(progress)
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _check_output(output, manifest_file, resume, overwrite):
    """Decide how to treat an existing output; returns the manifest to resume from, or None.

    Called with the output's lock held, so no other run changes the two files meanwhile. A
    manifest with no chunk done (a run killed before its first commit) resumes as a fresh run,
    whether or not its output was created.
    """
    has_output = os.path.exists(output)
    has_manifest = os.path.exists(manifest_file)
    if os.path.isdir(output):
        raise BatchError(f"Output {output} is a folder; give a file path")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise BatchError(f"The output's folder {parent} does not exist")
    if resume:
        if has_manifest:
            try:
                with open(manifest_file, encoding="utf-8") as f:
                    state = json.load(f)
                if not isinstance(state, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as err:
                raise BatchError(f"Cannot resume: {manifest_file} is unreadable ({err}); rerun with --overwrite") from None
            if not state.get("chunks_done"):
                return state
            if not has_output:
                raise BatchError(f"Cannot resume: {manifest_file} exists but the output {output} is gone; rerun with --overwrite")
            if os.path.getsize(output) < state.get("bytes_done", 0):
                raise BatchError(f"Cannot resume: {output} is shorter than its manifest records; rerun with --overwrite")
            return state
        if has_output:
            raise BatchError(
                f"Cannot resume: {output} has no progress manifest ({os.path.basename(manifest_file)}), so it is "
                "either complete or not written by ktp predict; rerun with --overwrite to replace it"
            )
        return None
    if (has_output or has_manifest) and not overwrite:
        what = "an unfinished run (its manifest exists)" if has_manifest else "a file"
        raise BatchError(
            f"Output {output} already exists as {what}; pass --resume to continue an unfinished run "
            "or --overwrite to replace it"
        )
    # With overwrite, an old manifest stays until the new run replaces it (before it touches
    # the output), so a run killed in between leaves a state that still resumes.
    return None


def _check_manifest(state, fingerprint, settings, manifest_file):
    if state.get("version") != MANIFEST_VERSION:
        raise BatchError(f"Cannot resume: {manifest_file} has manifest version {state.get('version')!r}; rerun with --overwrite")
    if state.get("fingerprint") == fingerprint:
        return
    before = state.get("settings", {})
    changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
    raise BatchError(
        f"Cannot resume: these settings differ from the interrupted run's: {', '.join(changed) or 'unknown'}. "
        "Resume with the same model, inputs and options, or rerun with --overwrite"
    )


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def format_summary(summary: dict) -> str:
    """A one-line human summary of a batch job."""
    parts = [
        f"{summary['rows']:,} rows",
        f"{summary['errors']:,} errors",
        f"{summary['files']} files",
    ]
    if summary.get("file_errors"):
        parts.append(f"{summary['file_errors']} unreadable")
    if summary.get("files_cut_short"):
        parts.append(f"{summary['files_cut_short']} cut short")
    if summary.get("blank_lines_skipped"):
        parts.append(f"{summary['blank_lines_skipped']} blank lines skipped")
    if summary.get("resumed_rows"):
        parts.append(f"resumed after {summary['resumed_rows']:,} rows")
    rate = summary.get("rows_per_second")
    timing = f"{summary['seconds']:.1f}s" + (f", {rate:,.0f} rows/s" if rate is not None else "")
    return f"ktp predict: {', '.join(parts)} in {timing} -> {summary['output']}"


def _one_line(err) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 1000 else text[:1000] + " ..."


def _beam_option(value):
    if "=" not in value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return value


def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``ktp predict`` arguments to ``parser`` (an argparse (sub)parser)."""
    if not any(a.dest == "model_dir" for a in parser._actions):
        parser.add_argument("model_dir", metavar="MODEL_DIR", help="a saved pipeline folder")
    io_group = parser.add_argument_group("input and output")
    io_group.add_argument("--input", "-i", dest="inputs", nargs="+", action="extend", required=True, metavar="PATH",
                          help="input files, folders or glob patterns (quote globs); gzip files are read as is")
    io_group.add_argument("--output", "-o", required=True, metavar="PATH", help="output file (JSONL, or TSV for .tsv)")
    io_group.add_argument("--output-format", choices=OUTPUT_FORMATS, help="default: tsv for a .tsv output, else jsonl")
    io_group.add_argument("--format", dest="input_format", choices=INPUT_FORMATS, default="auto",
                          help="input format (default auto: by extension, .jsonl .tsv .csv .conll, else one text a line)")
    io_group.add_argument("--text-column", help="JSON key or TSV/CSV column (name or 0-based number) of the text; "
                                                "default: the pipeline's data.text_column")
    io_group.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                          help="TSV/CSV inputs start with a header row (default: the pipeline's data.header)")
    io_group.add_argument("--encoding", help="input encoding (default: the pipeline's data.encoding)")
    io_group.add_argument("--include-text", action="store_true", help="copy each input text into its output row")
    io_group.add_argument("--overwrite", action="store_true", help="replace an existing output")
    io_group.add_argument("--resume", action="store_true", help="continue an interrupted run with the same arguments")
    io_group.add_argument("--allow-errors", action="store_true", help="exit 0 even when some rows failed")
    io_group.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON")
    speed = parser.add_argument_group("speed")
    speed.add_argument("--batch-size", type=int, help="rows per model call (default: training.predict_batch_size)")
    speed.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                       help=f"rows read, tokenized and committed together (default {DEFAULT_CHUNK_SIZE}); memory grows with it")
    speed.add_argument("--workers", type=int, help="tokenizer processes (default: the CPUs available; 0: none)")
    speed.add_argument("--no-bucketing", dest="bucketing", action="store_false",
                       help="batch rows in input order instead of sorting them by length")
    shown = parser.add_argument_group("progress")
    shown.add_argument("--progress", action="store_true", default=None,
                       help="show progress even when stderr is not a terminal")
    if not any(a.dest == "quiet" for a in parser._actions):
        shown.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary line")
    beam = parser.add_argument_group('Apache Beam (pip install -e ".[beam]")')
    beam.add_argument("--runner", choices=("local", "beam"), default="local",
                      help="local (default): this machine; beam: an Apache Beam pipeline")
    beam.add_argument("--beam-option", action="append", default=[], type=_beam_option, metavar="KEY=VALUE",
                      help="a Beam pipeline option, e.g. runner=DirectRunner or direct_num_workers=2 (repeatable)")
    beam.add_argument("--shards", type=int, default=0, help="Beam output shards (default 0: the runner decides)")
    beam.add_argument("--merge", action="store_true",
                      help="after a Beam run, merge the shards into OUTPUT in input order (local files)")
    return parser


def predict_command(args) -> int:
    """Run ``ktp predict`` from parsed arguments; returns the exit code.

    0: every row predicted (or ``--allow-errors``); 1: some rows failed; 2: the job could not run.
    """
    quiet = bool(getattr(args, "quiet", False))
    # the options both runners take
    common = dict(
        output_format=args.output_format,
        format=args.input_format,
        text_column=args.text_column,
        header=args.header,
        encoding=args.encoding,
        include_text=args.include_text,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        bucketing=args.bucketing,
        overwrite=args.overwrite,
    )
    try:
        if getattr(args, "runner", "local") == "beam":
            if args.resume:
                raise BatchError("--resume is for --runner local; Beam runners retry failed work themselves")
            from ..beam import run_beam

            summary = run_beam(
                args.model_dir,
                args.inputs,
                args.output,
                beam_options=args.beam_option,
                num_shards=args.shards,
                merge=args.merge,
                **common,
            )
        else:
            if args.beam_option or args.merge or args.shards:
                raise BatchError("--beam-option, --shards and --merge need --runner beam")
            summary = predict_files(
                args.model_dir,
                args.inputs,
                args.output,
                workers=args.workers,
                resume=args.resume,
                progress=False if quiet else args.progress,
                **common,
            )
    except (KtpError, OSError, ImportError) as err:
        # Every error the job raises on purpose, and the system's (a full disk, a folder that
        # cannot be written): one line, no traceback.
        print(f"ktp predict: error: {_one_line(err)}", file=sys.stderr)
        return 2
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, ensure_ascii=False)
    if not quiet:
        print(format_summary(summary), file=sys.stderr)
        for message in summary["error_examples"][:3]:
            print(f"  error: {message}", file=sys.stderr)
    return 1 if summary["errors"] and not args.allow_errors else 0


def main(argv=None) -> int:
    """``python -m pipeline.batch MODEL_DIR --input ... --output ...`` (the same as ``ktp predict``)."""
    parser = argparse.ArgumentParser(prog="ktp predict", description="Run a saved pipeline over text files.")
    add_predict_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    return predict_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
