"""``ktp predict`` (and ``python -m pipeline.batch``): the arguments, the choice between the local
and the Beam runner, the exit code and the one-line summary."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from stages.errors import one_line

from ..errors import BatchError, KtpError
from .inputs import DEFAULT_CHUNK_SIZE, INPUT_FORMATS
from .outputs import OUTPUT_FORMATS


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
            from ..beam import run_beam as run

            own = {"beam_options": args.beam_option, "num_shards": args.shards, "merge": args.merge}
        else:
            # Imported here: the package, where the job lives, imports this module.
            from . import predict_files as run

            if args.beam_option or args.merge or args.shards:
                raise BatchError("--beam-option, --shards and --merge need --runner beam")
            own = {"workers": args.workers, "resume": args.resume, "progress": False if quiet else args.progress}
        summary = run(args.model_dir, args.inputs, args.output, **own, **common)
    except (KtpError, OSError, ImportError) as err:
        # Every error the job raises on purpose, and the system's (a full disk, a folder that
        # cannot be written): one line, no traceback.
        print(f"ktp predict: error: {one_line(err, 1000)}", file=sys.stderr)
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
