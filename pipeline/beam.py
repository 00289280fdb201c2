"""Batch prediction as an Apache Beam pipeline (optional extra: ``pip install -e ".[beam]"``).

The Beam job does what ``pipeline.batch.predict_files`` does on one machine, spread over Beam
workers:

    input files ─▶ read rows (one file per worker, with file and line) ─▶ reshuffle
      ─▶ RunInference(PipelineModelHandler): rows batched into chunks, one model per worker,
         length-bucketed batches ─▶ JSONL / TSV lines ─▶ sharded text output

``PipelineModelHandler`` is a small ``ModelHandler``: its ``load_model`` loads our saved pipeline
folder (Keras model included) once per worker, so no TensorFlow-specific Beam handler (and no
full ``tensorflow`` package) is needed. Rows keep their ``file`` and ``line`` fields, so the
shards can be put back into input order with ``merge_shards``.

Example:
    >>> from pipeline.beam import run_beam
    >>> summary = run_beam("saved_models/sentiment", ["corpus/*.txt"], "out/predictions.jsonl",
    ...                    beam_options=["direct_num_workers=2"], merge=True)  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import heapq
import json
import os
import time

from .batch import (
    DEFAULT_CHUNK_SIZE,
    LOCK_SUFFIX,
    OUTPUT_FORMATS,
    BatchError,
    OutputLock,
    RowFormatter,
    Runner,
    iter_rows,
    process_chunk,
    read_options_for,
    resolve_inputs,
    unescape_cell,
)

try:
    import apache_beam as beam
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
except ImportError:  # the optional extra is not installed
    beam = None
    ModelHandler = object

INSTALL_HINT = 'The Beam runner needs Apache Beam: pip install -e ".[beam]" (or pip install apache-beam)'
NAMESPACE = "ktp"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
DEFAULT_RUNNER = "FnApiRunner"


def require_beam():
    """Raise ImportError with install advice when apache_beam is missing."""
    if beam is None:
        raise ImportError(INSTALL_HINT)
    return beam


class PipelineModelHandler(ModelHandler):
    """A Beam ``ModelHandler`` for a saved keras-text-pipeline folder.

    Elements are input rows ``(file, line, text, error)``; each inference is the finished output
    line (JSONL or TSV) for that row, so rows that failed to read pass through as error rows.

    Args:
        model_dir: the saved pipeline folder (a path every worker can read).
        output_format: ``jsonl`` or ``tsv``.
        include_text: copy input texts into the output rows.
        keys: the answer fields, for TSV.
        batch_size: rows per model call.
        chunk_size: rows per Beam batch (the unit of length bucketing).
        bucketing: sort rows by length within a batch.
    """

    def __init__(self, model_dir, output_format="jsonl", include_text=False, keys=(), batch_size=None,
                 chunk_size=DEFAULT_CHUNK_SIZE, bucketing=True):
        require_beam()
        self.model_dir = model_dir
        self.output_format = output_format
        self.include_text = include_text
        self.keys = list(keys)
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.bucketing = bucketing
        # Fixed-size batches: each is one chunk, bucketed by length (BatchElements' adaptive
        # sizing would start with tiny batches, which waste the model's time).
        self._batching_kwargs = {"min_batch_size": chunk_size, "max_batch_size": chunk_size}

    def load_model(self):
        from .core import Pipeline

        return Runner(Pipeline.load(self.model_dir), batch_size=self.batch_size, bucketing=self.bucketing)

    def run_inference(self, batch, model, inference_args=None):
        formatter = RowFormatter(self.output_format, self.include_text, self.keys)
        rows = [tuple(row) for row in batch]
        lines, errors = process_chunk(rows, model, formatter)
        return [PredictionResult(row, (line, error)) for row, line, error in zip(rows, lines, errors)]

    def batch_elements_kwargs(self):
        return self._batching_kwargs

    def get_metrics_namespace(self):
        return NAMESPACE


def _read_rows(path, read_options):
    import collections

    stats = collections.Counter()
    for row in iter_rows([path], read_options, stats=stats):
        yield row
    for key, value in stats.items():
        beam.metrics.Metrics.counter(NAMESPACE, key).inc(value)


def _emit(result):
    line, error = result.inference
    beam.metrics.Metrics.counter(NAMESPACE, "rows").inc()
    if error is not None:
        beam.metrics.Metrics.counter(NAMESPACE, "errors").inc()
    return line.rstrip("\n")


def shard_paths(output: str) -> tuple[str, str]:
    """Beam's ``(file_path_prefix, file_name_suffix)`` for an output path: ``out/p.jsonl`` is
    written as ``out/p-00000-of-00004.jsonl``, ``out/p-00001-of-00004.jsonl``, ..."""
    stem, ext = os.path.splitext(output)
    if ext.lower() in (".jsonl", ".tsv", ".json", ".txt"):
        return stem, ext
    return output, ""


def existing_shards(output: str) -> list[str]:
    prefix, suffix = shard_paths(output)
    return sorted(glob.glob(glob.escape(prefix) + "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]" + glob.escape(suffix)))


def build_beam_pipeline(root, files, output, read_options, handler, header, num_shards):
    """Add the prediction transforms to a Beam pipeline ``root``; returns the write result."""
    prefix, suffix = shard_paths(output)
    lines = (
        root
        | "ListFiles" >> beam.Create(files)
        | "ReadRows" >> beam.FlatMap(_read_rows, read_options)
        | "Spread" >> beam.Reshuffle()
        | "Predict" >> RunInference(handler)
        | "Format" >> beam.Map(_emit)
    )
    return lines | "Write" >> beam.io.WriteToText(
        prefix,
        file_name_suffix=suffix,
        num_shards=num_shards,
        shard_name_template=SHARD_TEMPLATE,
        header=header.rstrip("\n") if header else None,
    )


def run_beam(
    model_dir,
    inputs,
    output: str,
    *,
    beam_options=(),
    output_format: str | None = None,
    format: str | None = None,
    text_column=None,
    header: bool | None = None,
    encoding: str | None = None,
    include_text: bool = False,
    batch_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bucketing: bool = True,
    num_shards: int = 0,
    overwrite: bool = False,
    merge: bool = False,
) -> dict:
    """Run batch prediction as an Apache Beam job and write sharded outputs.

    Args:
        model_dir: the saved pipeline folder; every Beam worker must be able to read it.
        inputs: files, folders or glob patterns (expanded here, when the job is built).
        output: the output path; shards are named ``STEM-00000-of-0000N.EXT``.
        beam_options: ``KEY=VALUE`` strings turned into Beam pipeline flags ``--KEY=VALUE``
            (e.g. ``runner=DataflowRunner``, ``direct_num_workers=2``,
            ``direct_running_mode=multi_processing``); the runner defaults to ``FnApiRunner``,
            the in-process runner behind Beam's DirectRunner.
        num_shards: output shards (0: the runner decides).
        merge: afterwards, merge the shards into ``output`` in input order (local files).
        The other arguments are those of ``pipeline.batch.predict_files``.

    Returns:
        A summary dict like ``predict_files``'s, with ``shards`` (the files written).

    Raises:
        BatchError: shards exist (without ``overwrite``), or another run holds ``OUTPUT.lock``.
    """
    require_beam()
    with OutputLock(os.fspath(output)):
        from apache_beam.options.pipeline_options import PipelineOptions

        t0 = time.perf_counter()
        output, output_format = _checked_output(output, output_format, chunk_size, merge, overwrite)
        lock_file = os.path.abspath(output + LOCK_SUFFIX)
        files = [f for f in resolve_inputs(inputs) if os.path.abspath(f) != lock_file]

        local, keys = _local_pipeline(model_dir, output_format, batch_size, bucketing)
        read_options = read_options_for(local, format, text_column, header, encoding)
        if read_options["format"] == "conll":
            raise BatchError("The Beam runner reads text, JSONL, TSV and CSV inputs; run CoNLL files with --runner local")
        handler = PipelineModelHandler(
            os.path.abspath(model_dir), output_format, include_text, keys, batch_size, chunk_size, bucketing
        )
        flags = beam_flags(beam_options)
        options = PipelineOptions(flags)
        header_line = RowFormatter(output_format, include_text, keys).header()
        root = beam.Pipeline(options=options)
        build_beam_pipeline(root, files, output, read_options, handler, header_line, num_shards)
        result = root.run()
        result.wait_until_finish()
        counts = _counters(result)
        shards = existing_shards(output)
        if merge:
            merge_shards(shards, output, files, output_format)
        summary = {
            "output": output if merge else (shards[0] if len(shards) == 1 else f"{len(shards)} shards of {output}"),
            "output_format": output_format,
            "shards": shards,
            "runner": next(f.split("=", 1)[1] for f in flags if f.startswith("--runner=")),
            "chunk_size": chunk_size,
            "batch_size": batch_size,
            "error_examples": [],
        }
        return {**_counts_summary(counts, len(files), time.perf_counter() - t0), **summary}


def _local_pipeline(model_dir, output_format, batch_size, bucketing):
    """The pipeline, read here for its reading options, and the answer fields of a TSV header.

    Only a TSV output needs the model here (to learn the answer fields); otherwise the
    pipeline's config is enough."""
    from .core import Pipeline

    if output_format == "tsv":
        local = Pipeline.load(model_dir)
        return local, Runner(local, batch_size=batch_size, bucketing=bucketing).output_keys()
    return Pipeline.from_yaml(os.path.join(model_dir, "pipeline.yaml")), []


def _checked_output(output, output_format, chunk_size, merge, overwrite) -> tuple[str, str]:
    """Check ``run_beam``'s output arguments and remove earlier shards (with ``overwrite``);
    returns the output path and format."""
    output = os.fspath(output)
    output_format = output_format or ("tsv" if output.endswith(".tsv") else "jsonl")
    if output_format not in OUTPUT_FORMATS:
        raise BatchError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}; got {output_format!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise BatchError(f"chunk_size must be an integer >= 1; got {chunk_size!r}")
    old = existing_shards(output) + ([output] if merge and os.path.exists(output) else [])
    if old and not overwrite:
        raise BatchError(f"Output shards already exist ({old[0]}, ...); pass --overwrite to replace them")
    for path in old:
        os.remove(path)
    return output, output_format


def beam_flags(beam_options) -> list[str]:
    """``KEY=VALUE`` strings as Beam flags ``--KEY=VALUE``, with the default runner unless
    one is named."""
    flags = []
    for option in beam_options:
        key, _, value = option.partition("=")
        flags.append(f"--{key.lstrip('-')}={value}")
    if not any(f.startswith("--runner=") for f in flags):
        # Beam's in-process local runner. (``DirectRunner`` itself first tries the Prism
        # runner, which downloads a binary from GitHub; this stays offline.)
        flags.append(f"--runner={DEFAULT_RUNNER}")
    return flags


def _counts_summary(counts: dict, n_files: int, seconds: float) -> dict:
    """The row and file figures of a Beam run's summary, from its counters."""
    return {
        "rows": counts.get("rows", 0),
        "errors": counts.get("errors", 0),
        "predicted": counts.get("rows", 0) - counts.get("errors", 0),
        "files": n_files,
        "file_errors": counts.get("file_errors", 0),
        "files_cut_short": counts.get("files_cut_short", 0),
        "blank_lines_skipped": counts.get("blank_lines_skipped", 0),
        "seconds": round(seconds, 3),
        "rows_per_second": round(counts.get("rows", 0) / seconds, 1) if seconds > 0 else None,
        "resumed_rows": 0,
    }


def _counters(result) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    counts = {}
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except (NotImplementedError, AttributeError):  # some runners do not report metrics
        return counts
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + (value or 0)
    return counts


def merge_shards(shards, output: str, files, output_format: str = "jsonl") -> str:
    """Merge Beam output shards into one file in input order (by input file, then line).

    Args:
        shards: the shard files.
        output: the merged file to write.
        files: the input files in input order, as the rows name them.
        output_format: ``jsonl`` or ``tsv`` (TSV shards each start with the header).
    """
    order = {path: i for i, path in enumerate(files)}

    def keyed(path):
        with open(path, encoding="utf-8") as f:
            if output_format == "tsv":
                f.readline()
            rows = []
            for line in f:
                if output_format == "tsv":
                    cells = line.split("\t", 2)
                    name, lineno = unescape_cell(cells[0]), int(cells[1])
                else:
                    row = json.loads(line)
                    name, lineno = row["file"], row["line"]
                rows.append((order.get(name, len(order)), lineno, line))
        rows.sort()
        return rows

    header = ""
    if output_format == "tsv" and shards:
        with open(shards[0], encoding="utf-8") as f:
            header = f.readline()
    tmp = output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(header)
        # Each shard is sorted on its own, then merged. Memory holds every shard's rows: this
        # is a convenience for local runs; sort big distributed outputs where they are.
        for _, _, line in heapq.merge(*[keyed(p) for p in shards]):
            out.write(line if line.endswith("\n") else line + "\n")
    os.replace(tmp, output)
    return output
