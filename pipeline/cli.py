"""The ``ktp`` command line: train, evaluate, predict, export, ensemble, inspect, coverage, validate.

Run ``ktp COMMAND --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import sys
import time

from stages.backend import NativeNoiseFilter

log = logging.getLogger("ktp")


#: Loggers of libraries that talk on every run: TensorFlow's SavedModel notes ("Assets written
#: to ..."), absl, Apache Beam's runner and workers, JAX probing for accelerators, fonts.
NOISY_LOGGERS = ("tensorflow", "absl", "apache_beam", "jax", "jax._src.xla_bridge", "h5py", "matplotlib", "PIL", "grpc")


def verbose_wanted(args=None) -> bool:
    """Whether the user asked for every library's log lines: ``--verbose`` or ``KTP_VERBOSE``
    set to anything but ``""`` / ``0``."""
    return bool(getattr(args, "verbose", False)) or os.environ.get("KTP_VERBOSE", "") not in ("", "0")


class _OurLinesOnly(logging.Filter):
    """Lets our ``ktp`` lines through, and other libraries' lines only from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "ktp" or record.name.startswith("ktp.") or record.levelno >= logging.ERROR


def _setup_logging(quiet: bool, verbose: bool = False):
    """Our lines at INFO (WARNING with ``--quiet``) on stderr; other libraries' lines only with
    ``verbose`` (``--verbose`` / ``KTP_VERBOSE=1``), else only their errors."""
    if not verbose:
        # Child processes (batch workers, Beam workers, a TensorFlow export child) inherit it;
        # for this process it only counts when set before TensorFlow is first imported.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_ktp", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._ktp = True
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    else:
        # sys.stderr may be another object since the last call (tests capture it); the old one
        # may be closed, so it is not flushed (as setStream would).
        handler.stream = sys.stderr
    for f in list(handler.filters):
        handler.removeFilter(f)
    if not verbose:
        handler.addFilter(_OurLinesOnly())
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    for name in NOISY_LOGGERS:
        # Some of them carry a level or a handler of their own, so the root filter is not enough.
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)


def _resolve(path: str | None, config_path: str | None = None) -> str | None:
    """A data path as given, or relative to the config file's folder when that is where it exists."""
    if path is None or os.path.exists(path) or config_path is None or os.path.isabs(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(config_path)), path)
    return beside if os.path.exists(beside) else path


def _keras_verbose(quiet: bool):
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def _config_with_overrides(args) -> dict:
    """The parsed config of ``args.config`` with every ``--set PATH=VALUE`` applied."""
    from .config import apply_overrides, load_yaml

    return apply_overrides(load_yaml(args.config), args.set)


def _pipeline_of(config: dict):
    """The pipeline of a parsed config, validated like the file."""
    from . import Pipeline

    return Pipeline.from_config(config)


#: What ``ktp train`` writes into a run folder besides the pipeline's stage folders; all of it
#: comes from the trained model, so ``--overwrite`` removes it before training again.
RUN_ARTIFACTS = (
    "pipeline.yaml", "metadata.json", "metrics.json", "history.csv",
    "saved_model", "checkpoints", "members", "logs",
)


def _stage_folders(output: str) -> list[str]:
    """The stage folders named in ``output/pipeline.yaml`` (none when it cannot be read)."""
    import yaml

    try:
        with open(os.path.join(output, "pipeline.yaml"), encoding="utf-8") as f:
            stages = (yaml.safe_load(f) or {}).get("stages") or {}
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return []
    return [str(name) for name in stages if isinstance(name, str) and name and os.sep not in name and name not in (".", "..")]


def _prepare_run_folder(output: str, overwrite: bool, stage_names=()) -> None:
    """Refuse a non-empty run folder unless ``overwrite``; with it, remove everything an
    earlier training left there (the saved pipeline, SavedModel, checkpoints, ensemble members,
    TensorBoard logs, metrics, history and pictures), so nothing from the old model survives
    beside the new one. Files that no training writes are left alone, and a folder without
    any sign of a run (no ``pipeline.yaml``, ``metadata.json``, ``history.csv``,
    ``checkpoints/`` or ``saved_model/``) has nothing removed."""
    import shutil

    if os.path.exists(output) and not os.path.isdir(output):
        raise FileExistsError(f"--output {output} is a file, not a folder; choose a folder for the run")
    if not os.path.isdir(output) or not os.listdir(output):
        return
    if not overwrite:
        raise FileExistsError(
            f"{output} already holds a training run; pass --overwrite to replace it (its model, SavedModel, "
            "checkpoints, logs and pictures are removed first), or choose another --output"
        )
    names = set(os.listdir(output))
    if not names & {"pipeline.yaml", "metadata.json", "history.csv", "checkpoints", "saved_model"}:
        return  # no earlier run here, only files of someone else's: train beside them, remove nothing
    derived = set(RUN_ARTIFACTS) | set(_stage_folders(output)) | set(stage_names)
    derived |= {n for n in names if n.lower().endswith(".png")}
    for name in sorted(derived & names):
        path = os.path.join(output, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    log.info("Removed the earlier run in %s (--overwrite)", output)


def _check_training_extras(pipeline) -> None:
    """Options that need an optional package: say how to install it before any training."""
    from .errors import ConfigError

    if pipeline.training.get("tensorboard") and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "tensorboard",
            'needs the tensorboard package: pip install -e ".[tensorboard]" (or pip install tensorboard), '
            "or set training.tensorboard: false",
            True,
            "training",
        )


def _format_from_extension(pipeline, path: str, need_targets: bool = True):
    """The reader format that ``path``'s extension names (``.csv``, ``.jsonl``, ``.tsv``,
    ``.txt``, ...; ``.gz`` looked through), as ``ktp predict`` picks it, when it differs from
    the pipeline's and the task family reads it; else None."""
    from .batch import detect_format
    from .errors import ConfigError

    spec = getattr(pipeline, "data_options", {}).get("format")
    if spec is None or not path or os.path.isdir(path):
        return None
    detected = detect_format(path, default=None)
    if detected is None or detected == pipeline.data.get("format"):
        return None
    try:
        spec[1]("format", detected)
    except ConfigError:
        return None  # not a format this family reads (e.g. .txt for a tagger)
    if detected == "text" and need_targets and pipeline.task == "classification":
        return None  # plain text has no labels; keep the configured reader
    return detected


def _read(pipeline, path: str, keep_format: bool, need_targets: bool = True):
    """``pipeline.read(path)``, with the reader format taken from the file's extension unless
    ``keep_format`` (``data.format`` set in the config, or ``--format`` given). The pipeline's
    own ``data.format`` is left as it was, so what is saved does not depend on one file's name."""
    fmt = None if keep_format else _format_from_extension(pipeline, path, need_targets)
    if fmt is None:
        return pipeline.read(path, need_targets=need_targets)
    log.info("Reading %s as %s (from its extension; set data.format or pass --format to choose)", path, fmt)
    saved = pipeline.data.get("format")
    pipeline.data["format"] = fmt
    try:
        return pipeline.read(path, need_targets=need_targets)
    finally:
        pipeline.data["format"] = saved


def cmd_train(args) -> int:
    config = _config_with_overrides(args)
    format_set = isinstance(config.get("data"), dict) and "format" in config["data"]
    pipeline = _pipeline_of(config)
    _check_training_extras(pipeline)
    train = _resolve(args.train or pipeline.data.get("train"), args.config)
    dev = _resolve(args.dev or pipeline.data.get("dev"), args.config)
    if not train:
        raise SystemExit("ktp train: no training data: pass --train PATH or set data.train in the config")
    output = args.output or os.path.join("saved_models", os.path.splitext(os.path.basename(args.config))[0])
    _prepare_run_folder(output, args.overwrite, pipeline.stages)
    corpus = _read(pipeline, train, format_set)
    validation = None
    if dev:
        dev_corpus = _read(pipeline, dev, format_set)
        validation = (dev_corpus.texts, dev_corpus.labels)
    log.info("Training %s on %d examples from %s%s", pipeline.task, len(corpus.texts), train, f" (dev: {dev})" if dev else "")
    t0 = time.perf_counter()
    pipeline.fit(
        corpus.texts,
        corpus.labels,
        validation_data=validation,
        output_dir=output,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=_keras_verbose(args.quiet),
    )
    log.info("Trained in %.1fs; saved the pipeline to %s", time.perf_counter() - t0, output)
    metrics_path = os.path.join(output, "metrics.json")
    if validation is not None and os.path.isfile(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            dev_metrics = json.load(f).get("dev", {})
        log.info("Dev: %s", _headline(dev_metrics))
    if args.export:
        report = pipeline.export(os.path.join(output, "saved_model"), overwrite=True)
        log.info("Exported a SavedModel to %s", report.get("path", os.path.join(output, "saved_model")))
    return 0


def _headline(metrics: dict) -> str:
    keys = ("accuracy", "macro_f1", "f1", "precision", "recall", "bleu", "perplexity", "mae", "rmse", "r2", "pearson")
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in keys if isinstance(metrics.get(k), (int, float)))


def cmd_evaluate(args) -> int:
    from . import Pipeline

    pipeline = Pipeline.load(args.model_dir)
    _apply_format_overrides(pipeline, args)
    corpus = _read(pipeline, args.data, keep_format=_format_chosen(pipeline, args))
    metrics = pipeline.evaluate(corpus.texts, corpus.labels)
    metrics["examples"] = len(corpus.texts)
    metrics["skipped_rows"] = len(corpus.skipped)
    if args.json:
        json.dump(metrics, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(f"{args.data}: {len(corpus.texts)} examples")
        print(_headline(metrics))
        for label, row in metrics.get("per_class", metrics.get("per_type", {})).items():
            print(f"  {label:<20} " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return 0


def _format_chosen(pipeline, args) -> bool:
    """Whether the reader format of a saved pipeline is a choice to keep: ``--format`` was
    given, or the saved ``data.format`` is not the task family's default."""
    if getattr(args, "format", None) is not None:
        return True
    spec = getattr(pipeline, "data_options", {}).get("format")
    return spec is None or pipeline.data.get("format") != spec[0]


def _apply_format_overrides(pipeline, args):
    for key in ("format", "text_column", "label_column"):
        value = getattr(args, key, None)
        if value is not None:
            if key.endswith("_column") and value.isdigit():
                value = int(value)
            pipeline.data[key] = value


def cmd_export(args) -> int:
    from . import Pipeline

    pipeline = Pipeline.load(args.model_dir)
    output = args.output or os.path.join(args.model_dir, "saved_model")
    samples = None
    if args.samples:
        from .readers import read_corpus

        samples = read_corpus(args.samples, {"format": "text"}, need_labels=False).texts
    report = pipeline.export(output, samples=samples, overwrite=args.overwrite)
    print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_ensemble(args) -> int:
    from .ensemble import join_pipelines

    if os.path.exists(args.output) and not os.path.isdir(args.output):
        return _fail(f"--output {args.output} is a file, not a folder")
    if os.path.isdir(args.output) and os.listdir(args.output) and not args.overwrite:
        return _fail(f"{args.output} exists and is not empty; choose another --output or pass --overwrite")
    try:
        joined = join_pipelines(args.model_dirs)
    except ValueError as err:
        return _fail(str(err))
    joined.save(args.output)
    print(json.dumps({"output": args.output, "members": list(args.model_dirs)}, ensure_ascii=False))
    return 0


def cmd_inspect(args) -> int:
    from . import Pipeline

    pipeline = Pipeline.load(args.model_dir)
    with open(os.path.join(args.model_dir, "metadata.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    info = {"path": args.model_dir, "task": pipeline.task, "metadata": metadata, "config": pipeline.get_config(), "stages": {}}
    for name, stage in pipeline.stages.items():
        entry = {"type": stage.type_name}
        if getattr(stage, "tokens_", None) is not None:
            entry["vocabulary_size"] = len(stage.tokens_)
            entry["first_tokens"] = stage.tokens_[:12]
        if getattr(stage, "labels_", None) is not None:
            entry["labels"] = list(stage.labels_)
        model = getattr(stage, "model_", None)
        if model is not None:
            entry["parameters"] = int(model.count_params())
            entry["layers"] = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers]
        info["stages"][name] = entry
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2, default=str))
        return 0
    print(f"{args.model_dir}: {pipeline!r}")
    print(f"  saved {metadata.get('created')} with {metadata.get('versions')}")
    for name, entry in info["stages"].items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in entry.items()))
    return 0


def cmd_coverage(args) -> int:
    from . import Pipeline

    pipeline = Pipeline.load(args.model_dir)
    _apply_format_overrides(pipeline, args)
    corpus = _read(pipeline, args.data, keep_format=_format_chosen(pipeline, args), need_targets=False)
    report = pipeline.stage("vocabulary").coverage(pipeline.tokenize(corpus.texts), top=args.top)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"{args.data}: {report['tokens']} tokens, {report['coverage']:.2%} covered by the vocabulary; "
              f"{report['unknown_types']} unknown types of {report['types']}")
        for token, count in report["top_unknown"]:
            print(f"  {count:>8}  {token}")
    return 0


def cmd_validate(args) -> int:
    pipeline = _pipeline_of(_config_with_overrides(args))
    _check_training_extras(pipeline)
    print(f"{args.config}: valid {pipeline.task} pipeline: {pipeline!r}")
    return 0


def _add_format_options(p):
    p.add_argument("--format", help="override the saved data.format (e.g. tsv, csv, jsonl, fasttext, text)")
    p.add_argument("--text-column", help="override data.text_column (a name or a 0-based number)")
    p.add_argument("--label-column", help="override data.label_column (a name or a 0-based number)")


def _add_set_option(p):
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="override any config option, e.g. --set stages.model.units=128 --set data.scheme=bio "
                   "(VALUE is read as YAML; validated like the file); repeatable")


def add_training_overrides(parser, seed: bool = True) -> None:
    """``--epochs``, ``--batch-size``, ``--seed`` and ``--set``: the overrides of ``ktp train``,
    shared with the accuracy benchmarks (``seed=False`` leaves ``--seed`` out)."""
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--batch-size", type=int, help="override training.batch_size")
    if seed:
        parser.add_argument("--seed", type=int, help="override training.seed")
    _add_set_option(parser)


#: the help of a MODEL_DIR argument
SAVED_PIPELINE = "a saved pipeline folder (from ktp train)"


def add_command(sub, name, func, help, description, model_dir=None):
    """One ``ktp`` command: its parser in ``sub``, running ``func``, with a first argument
    ``MODEL_DIR`` (``model_dir`` its help) when given."""
    p = sub.add_parser(name, help=help, description=description)
    if model_dir:
        p.add_argument("model_dir", metavar="MODEL_DIR", help=model_dir)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="ktp",
        description="keras-text-pipeline: train, evaluate, run and export declarative Keras text pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"keras-text-pipeline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = add_command(sub, "train", cmd_train, help="train a pipeline from a YAML config", description="Train a pipeline from a YAML config and save it (with logs and pictures) to the output folder.")
    p.add_argument("config", help="pipeline YAML file")
    p.add_argument("--train", help="training data (default: data.train in the config)")
    p.add_argument("--dev", help="development data for early stopping and dev metrics (default: data.dev)")
    p.add_argument("--output", help="run folder (default: saved_models/<config name>)")
    add_training_overrides(p)
    p.add_argument("--export", action="store_true", help="also export a SavedModel to OUTPUT/saved_model")
    p.add_argument("--overwrite", action="store_true",
                   help="train into a folder that holds an earlier run, removing that run's model, SavedModel, "
                   "checkpoints, logs, metrics and pictures first (without it, a non-empty OUTPUT is refused)")

    p = add_command(sub, "evaluate", cmd_evaluate, help="evaluate a trained pipeline on labelled data", description="Evaluate a trained pipeline on labelled data.", model_dir=SAVED_PIPELINE)
    p.add_argument("--data", required=True, help="labelled data in the pipeline's data format (a .csv, .jsonl or .tsv "
                   "file is read by its extension unless the pipeline's data.format says otherwise)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _add_format_options(p)

    from .batch import add_predict_arguments, predict_command

    p = add_command(sub, "predict", predict_command, help="predict a corpus to JSONL or TSV", description="Run a trained pipeline over text files (streaming, parallel, resumable).", model_dir=SAVED_PIPELINE)
    add_predict_arguments(p)

    _add_saved_pipeline_commands(sub)
    if importlib.util.find_spec("pipeline.cli_seq2seq") is not None:
        from .cli_seq2seq import add_commands

        add_commands(sub)
    for command in sub.choices.values():
        # Every command takes --quiet and --verbose (ktp predict has its own --quiet, -q).
        if not any(a.dest == "quiet" for a in command._actions):
            command.add_argument("--quiet", action="store_true", help="only warnings and errors")
        if not any(a.dest == "verbose" for a in command._actions):
            command.add_argument("--verbose", action="store_true",
                                 help="also show other libraries' log lines (TensorFlow, absl, Beam, JAX); "
                                 "the same as KTP_VERBOSE=1")
    return parser


def _add_saved_pipeline_commands(sub) -> None:
    """``ktp export``, ``ensemble``, ``inspect``, ``coverage`` and ``validate``: the commands
    about a saved pipeline or a config, beside training and prediction."""
    p = add_command(sub, "export", cmd_export, help="export a TensorFlow SavedModel", description="Export a trained pipeline as a TensorFlow SavedModel and check it against the Python pipeline.", model_dir=SAVED_PIPELINE)
    p.add_argument("--output", help="SavedModel folder (default: MODEL_DIR/saved_model)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing SavedModel at the destination")
    p.add_argument("--samples", help="a text file, one text a line, for the golden check (default: built-in samples)")

    p = add_command(
        sub, "ensemble", cmd_ensemble, help="join separately trained pipelines into one ensemble",
        description="Join pipelines trained from the same config and data (e.g. with different --seed, in parallel) "
        "into one saved pipeline answering with the members' mean, as model.ensemble does in one run.",
    )
    p.add_argument("model_dirs", metavar="MODEL_DIR", nargs="+", help="two or more saved single-network pipelines")
    p.add_argument("--output", required=True, help="folder for the joined pipeline")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --output folder")

    p = add_command(
        sub, "inspect", cmd_inspect, help="show a saved pipeline's config, versions and sizes",
        description="Show what a saved pipeline holds: its task and chain of stages, the package versions and date it "
        "was saved with, vocabulary sizes and first tokens, labels, and the model's layers and parameter count.",
        model_dir=SAVED_PIPELINE,
    )
    p.add_argument("--json", action="store_true", help="print everything, the full config included, as one JSON object")

    p = add_command(
        sub, "coverage", cmd_coverage, help="how much of a corpus the vocabulary covers",
        description="Tokenize a corpus with a saved pipeline's tokenizer and report how many of its tokens the "
        "vocabulary knows, with the most frequent unknown ones (a low figure means retraining on closer data, "
        "or a larger vocabulary.max_size / smaller min_freq).",
        model_dir=SAVED_PIPELINE,
    )
    p.add_argument("--data", required=True, help="a corpus in the pipeline's data format (labels are not needed; a .csv, "
                   ".jsonl, .tsv or .txt file is read by its extension unless the pipeline's data.format says otherwise)")
    p.add_argument("--top", type=int, default=20, help="list this many of the most frequent unknown tokens (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _add_format_options(p)

    p = add_command(
        sub, "validate", cmd_validate, help="check a YAML config without training",
        description="Check a YAML config (with any --set overrides) without training: every option is validated "
        "as `ktp train` would, optional packages the options need (e.g. tensorboard) are looked for, "
        "and the pipeline's chain of stages is printed.",
    )
    p.add_argument("config", help="pipeline YAML file")
    _add_set_option(p)


def _fail(message: str) -> int:
    print(f"ktp: error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = verbose_wanted(args)
    _setup_logging(getattr(args, "quiet", False), verbose)
    from .errors import KtpError

    try:
        # TensorFlow's runtime notices go to descriptor 2 directly: filtered for the command's life.
        with contextlib.nullcontext() if verbose else NativeNoiseFilter():
            return int(args.func(args) or 0)
    except (KtpError, FileNotFoundError, FileExistsError) as err:
        # Every error the project raises on purpose (config, data, fitting, export, batch):
        # one line, no traceback.
        return _fail(str(err))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
