"""The Pipeline: a named chain of stages with fit / evaluate / predict / save / load / export.

A pipeline is built from a config (YAML or dict) or from stage objects. The task family decides
how stages connect; each family is a Pipeline subclass registered in ``TASKS``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import importlib.metadata
import inspect
import json
import logging
import os
import warnings

import numpy as np
import yaml

from stages.errors import one_line, short_repr

from . import __version__
from .config import check_top_level, load_yaml, validate_section
from .errors import ConfigError, DataError, KtpError, NotFittedError
from .registry import KINDS
from .registry import get as get_stage_class
from .registry import registers_task
from .saved import check_assets, check_saved_folder, check_stage_name, inside_folder, read_metadata

log = logging.getLogger("ktp")

#: task name -> Pipeline subclass; filled by ``register_task``.
TASKS: dict[str, type] = {}


def register_task(name: str):
    """Class decorator: ``cls`` is the Pipeline of ``task: name``."""
    return registers_task(TASKS, name)


def _stage_type_to_kind(type_name: str, path: str):
    from stages import registry

    kind = registry.find_kind(type_name)
    if kind is None:
        every = sorted(n for kind in KINDS for n in registry.names(kind))
        raise ConfigError("type", registry.registered_requirement("a registered stage type", type_name, every), type_name, path)
    return kind


class Pipeline:
    """A chain of named stages for one task family.

    Args:
        stages: a dict (or list of ``(name, stage)`` pairs) of stage objects, in order.
        training: options of the ``training`` config section (epochs, batch_size, seed, ...).
        data: options of the ``data`` config section (reader format and columns, file paths).
        name: a name for the pipeline.

    Example:
        >>> from stages import CharTokenizer, Vocabulary, OneHotVectorizer, RNNClassifier, LabelDecoder
        >>> p = Pipeline.from_stages(
        ...     tokenizer=CharTokenizer(), vocabulary=Vocabulary(), vectorizer=OneHotVectorizer(max_length=20),
        ...     model=RNNClassifier(cell="gru", units=8), decoder=LabelDecoder())
        >>> p.fit(["好看", "难看"], ["pos", "neg"], epochs=1, verbose=0).predict(["好"])[0]["label"] in {"pos", "neg"}
        True
    """

    task = "base"
    #: stage kinds this task needs, each exactly once, in chain order.
    required_kinds: tuple[str, ...] = ()
    #: the family's own ``data`` section options: name -> (default, validator(name, value)).
    data_options: dict = {}
    #: the family's own ``training`` options, added to (or replacing) the common ones.
    training_options: dict = {}
    #: for a family outside ``pipeline.export``: the module whose import registers its exporter.
    exporter_module: str | None = None
    #: what ``read`` calls the examples a reader left out, in its warning.
    skipped_examples = "malformed rows (data.on_error: skip)"

    def __init__(self, stages, training: dict | None = None, data: dict | None = None, name: str | None = None):
        items = list(stages.items()) if isinstance(stages, dict) else list(stages)
        self.stages = dict(items)
        self.training = validate_section("training", training, self.training_options)
        self.data = validate_section("data", data, self.data_options)
        self.name = name
        self.history_ = None
        self._check_stages()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_stages(cls, training=None, data=None, name=None, **stages):
        """Compose a pipeline from stage objects given as keyword arguments, in order."""
        task_cls = cls if cls is not Pipeline else TASKS["classification"]
        return task_cls(stages, training=training, data=data, name=name)

    @classmethod
    def from_config(cls, config: dict) -> "Pipeline":
        """Build an unfitted pipeline from a config dict (the parsed YAML)."""
        if not isinstance(config, dict):
            raise ConfigError("", "A pipeline config must be a mapping with a 'stages' section", config)
        check_top_level(config, TASKS)
        task = config.get("task", "classification")
        task_cls = TASKS[task]
        stages = {}
        for stage_name in config["stages"]:
            check_stage_name(stage_name)
        for stage_name, options in config["stages"].items():
            path = f"stages.{stage_name}"
            options = {} if options is None else options
            if not isinstance(options, dict):
                raise ConfigError("", "must be a mapping of options (or empty)", options, path)
            options = dict(options)
            type_name = options.pop("type", stage_name)
            kind = _stage_type_to_kind(type_name, path)
            stage_cls = get_stage_class(kind, type_name, path)
            stages[stage_name] = stage_cls.from_config(options, path=path)
        return task_cls(stages, training=config.get("training"), data=config.get("data"), name=config.get("name"))

    @classmethod
    def from_yaml(cls, path: str) -> "Pipeline":
        """Build an unfitted pipeline from a YAML config file."""
        return cls.from_config(load_yaml(path))

    def get_config(self) -> dict:
        """The pipeline's config: exactly what ``from_config`` takes."""
        config = {}
        if self.name:
            config["name"] = self.name
        config["task"] = self.task
        config["stages"] = {
            name: {"type": stage.type_name, **stage.get_config()} for name, stage in self.stages.items()
        }
        config["data"] = copy.deepcopy(self.data)
        config["training"] = copy.deepcopy(self.training)
        return config

    def _check_stages(self):
        kinds = [getattr(s, "kind", None) for s in self.stages.values()]
        for name in self.stages:
            check_stage_name(name)
        for name, stage in self.stages.items():
            if getattr(stage, "kind", None) not in KINDS:
                raise ConfigError(name, "must be a registered stage object", stage, "stages")
        for kind in self.required_kinds:
            n = kinds.count(kind)
            if n != 1:
                raise ConfigError(
                    "stages",
                    f"of a {self.task} pipeline must hold exactly one {kind} stage (found {n}); "
                    f"it needs one of each: {', '.join(self.required_kinds)}",
                )
        extra = sorted(set(kinds) - set(self.required_kinds))
        if extra:
            raise ConfigError("stages", f"of a {self.task} pipeline cannot hold {', '.join(extra)} stages")
        order = [kinds.index(k) for k in self.required_kinds]
        if order != sorted(order):
            raise ConfigError("stages", f"must come in the order {' -> '.join(self.required_kinds)}")

    def stage(self, kind: str):
        """The stage of the given kind (``tokenizer``, ``vocabulary``, ...)."""
        for stage in self.stages.values():
            if stage.kind == kind:
                return stage
        raise KeyError(f"This pipeline has no {kind} stage")

    def __getitem__(self, name):
        return self.stages[name]

    @property
    def is_fitted(self) -> bool:
        return all(s.is_fitted for s in self.stages.values())

    def check_fitted(self):
        if not self.is_fitted:
            raise NotFittedError(
                "This pipeline is not fitted yet: call fit(texts, labels) (or `ktp train CONFIG`) first, "
                "or load a trained one with Pipeline.load(directory)."
            )

    def __repr__(self):
        chain = " -> ".join(f"{n}:{s.type_name}" for n, s in self.stages.items())
        return f"<{type(self).__name__} {chain}{' (fitted)' if self.is_fitted else ''}>"

    # -- data -------------------------------------------------------------------------------
    def read(self, path: str, need_targets: bool = True):
        """Read a corpus file with the ``data`` section's options (the family's reader, see its
        ``_read``); the examples it left out (``data.on_error: skip``) are logged.

        Returns:
            a ``Corpus`` (``pipeline.readers``): ``texts``, ``labels`` (None when
            ``need_targets`` is false), ``skipped`` (``(path, line, reason)`` of each example
            left out) and the family's own fields.
        """
        corpus = self._read(path, need_targets)
        if corpus.skipped:
            log.warning("%s: left out %d %s; first: %s", path, len(corpus.skipped), self.skipped_examples, corpus.skipped[0][2])
        return corpus

    def _read(self, path: str, need_targets: bool):
        """The family's reader: a ``Corpus`` of ``path`` (see ``read``)."""
        raise NotImplementedError(f"{type(self).__name__} does not read corpus files")

    # -- training ---------------------------------------------------------------------------
    def fit(
        self,
        texts,
        labels=None,
        validation_data=None,
        output_dir: str | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        seed: int | None = None,
        verbose=None,
        callbacks=None,
        **task_options,
    ):
        """Fit every stage on the training data and train the model: the one call of every family.

        Args:
            texts: the training inputs (texts; for tagging also token lists).
            labels: one target per text: a label (or a list of labels for multi-label), tags or
                entity spans, a translation, a number; a language model takes none.
            validation_data: ``(texts, labels)`` of a dev set (a language model also takes the
                texts alone), for early stopping, best-epoch restore and the dev figures.
            output_dir: a run folder; when given, the fitted pipeline is saved there together
                with ``history.csv``, ``checkpoints/best.keras``, ``metrics.json`` (history, dev
                figures) and PNG pictures (training curves, the family's dev pictures).
            epochs, batch_size, seed, verbose: override the ``training`` section.
            callbacks: extra Keras callbacks, run after the pipeline's own.
            **task_options: the family's own options, documented on its ``_train`` (tagging:
                ``resume``).

        Returns:
            self (the Keras history is in ``history_``; with ``model.ensemble`` > 1, that of the
            first member, and every member's in ``member_histories_``).

        With ``model.ensemble: N`` (classification, tagging) the network is trained N times,
        with seeds ``seed`` ... ``seed + N - 1``, each with early stopping and best-epoch restore
        of its own (the logs and checkpoints of member i go to ``output_dir/members/member_i``),
        and the pipeline answers with the members' mean.
        """
        options = self._options({"epochs": epochs, "batch_size": batch_size, "seed": seed, "verbose": verbose})
        set_seed(options["seed"])
        dev = self._train(texts, labels, validation_data, output_dir, options, list(callbacks or ()), **task_options)
        if output_dir:
            self._write_run(output_dir, options, dev)
        return self

    def _train(self, texts, labels, validation_data, output_dir, options: dict, callbacks: list):
        """The family's training: fit the pre-model stages, encode, build and train the model
        (setting ``history_``). ``options`` is the validated ``training`` section with the call's
        overrides, its seed already set; ``callbacks`` are the caller's extra ones.

        Returns the dev set as the family's ``evaluate`` takes it (``(texts, labels)``), or None.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement training")

    @staticmethod
    def _paired(texts, labels, names=("texts", "labels"), targets=list):
        """Training ``texts`` and their ``labels`` (made a list by ``targets``), checked to pair
        up one to one and not to be empty."""
        texts, labels = as_texts(texts), targets(labels)
        if len(texts) != len(labels):
            raise ValueError(f"Got {len(texts)} {names[0]} but {len(labels)} {names[1]}; they must pair up one to one")
        if not texts:
            raise ValueError("Cannot fit on an empty training set")
        return texts, labels

    # -- training scaffolding ---------------------------------------------------------------
    def _options(self, overrides: dict) -> dict:
        options = dict(self.training)
        for key, value in overrides.items():
            if value is not None:
                options[key] = value
        return validate_section("training", options, self.training_options)

    def _callbacks(self, options: dict, output_dir: str | None, has_validation: bool):
        import keras

        callbacks = []
        if has_validation and (options["restore_best"] or options["early_stopping_patience"]):
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=options["monitor"],
                    patience=options["early_stopping_patience"] or options["epochs"],
                    restore_best_weights=options["restore_best"],
                    verbose=0,
                )
            )
        if output_dir:
            os.makedirs(output_dir, exist_ok=True)
            if options["csv_log"]:
                callbacks.append(keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv")))
            if options["checkpoint"]:
                os.makedirs(os.path.join(output_dir, "checkpoints"), exist_ok=True)
                callbacks.append(
                    keras.callbacks.ModelCheckpoint(
                        os.path.join(output_dir, "checkpoints", "best.keras"),
                        monitor=options["monitor"] if has_validation else "loss",
                        save_best_only=True,
                    )
                )
            if options["tensorboard"]:
                callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(output_dir, "logs")))
        return callbacks

    @staticmethod
    def _members(n_members: int, options: dict, output_dir: str | None):
        """The networks to train for a model stage with ``ensemble: n_members``.

        Yields ``(index, seed, run folder)`` per member: one ``(0, seed, output_dir)`` without
        an ensemble; else member i gets seed ``seed + i`` (set here, before it is built) and the
        folder ``output_dir/members/member_<i + 1>`` for its logs and checkpoints.
        """
        for i in range(n_members):
            if n_members == 1:
                yield i, options["seed"], output_dir
                continue
            seed = None if options["seed"] is None else options["seed"] + i
            log.info("Training ensemble member %d of %d (seed %s)", i + 1, n_members, seed)
            if i and seed is not None:
                set_seed(seed)
            yield i, seed, os.path.join(output_dir, "members", f"member_{i + 1}") if output_dir else None

    def _fit_networks(self, options: dict, output_dir, callbacks: list, build, train_data, validation_data=None,
                      n_members: int = 1, own_callbacks=None) -> None:
        """Train the model stage: once, or once per ensemble member and then join the members
        with ``model.combine``. The one training loop of every family.

        For each member (``_members``: its seed set, its run folder), ``train_data(seed)`` gives
        its training data (arrays or batches), ``build(index, seed, data)`` builds its network
        (a family that trains on from the current weights leaves it as it is), and
        ``model.fit`` runs with ``validation_data``, ``_callbacks`` (early stopping, checkpoint,
        logs; ``own_callbacks(list)`` may put the family's own before them, and returns the
        list) and the caller's ``callbacks`` after them. Sets ``member_histories_`` (one per
        member) and ``history_`` (the first member's).
        """
        model = self.stage("model")
        members, self.member_histories_ = [], []
        for i, seed, member_dir in self._members(n_members, options, output_dir):
            data = train_data(seed)
            build(i, seed, data)
            pipeline_callbacks = self._callbacks(options, member_dir, validation_data is not None)
            if own_callbacks is not None:
                pipeline_callbacks = own_callbacks(pipeline_callbacks)
            model.fit(data, validation_data=validation_data, epochs=options["epochs"], batch_size=options["batch_size"],
                      callbacks=pipeline_callbacks + list(callbacks or ()), verbose=options["verbose"])
            members.append(model.model_)
            self.member_histories_.append(model.history_)
        if n_members > 1:
            model.combine(members)
        self.history_ = self.member_histories_[0]

    @staticmethod
    def _initial_weights(vectorizer, seed):
        """The vectorizer's pretrained start matrix (None without one), its random rows drawn
        with the training ``seed`` where the vectorizer takes one (those of other packages
        need not)."""
        get = getattr(vectorizer, "initial_weights", None)
        if get is None:
            return None
        if seed is not None and "seed" in inspect.signature(get).parameters:
            return get(seed=seed)
        return get()

    def _report_members(self, report: dict, output_dir: str, plots: bool):
        """Add every ensemble member's history to a run report, and draw each one's curves."""
        members = getattr(self, "member_histories_", [])
        if len(members) < 2:
            return
        report["member_histories"] = members
        if plots:
            from .plots import plot_history

            for i, history in enumerate(members, start=1):
                plot_history(history, os.path.join(output_dir, "members", f"member_{i}", "training_curves.png"))

    def _write_run(self, output_dir: str, options: dict, validation_data) -> None:
        """Finish a run folder: the fitted pipeline, ``metrics.json`` (``history``, the family's
        ``_run_report``, every ensemble member's history, ``dev`` figures) and the pictures
        (training curves with the monitored figure, each member's curves, ``_plot_dev``)."""
        self.save(output_dir)
        report = {"history": self.history_, **self._run_report()}
        self._report_members(report, output_dir, options["plots"])
        if options["plots"]:
            from .plots import plot_history

            plot_history(self.history_, os.path.join(output_dir, "training_curves.png"), monitor=options["monitor"])
        if validation_data is not None:
            report["dev"] = self.evaluate(*validation_data)
            if options["plots"]:
                self._plot_dev(report["dev"], output_dir)
        with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)

    def _run_report(self) -> dict:
        """The family's own entries of a run's ``metrics.json`` (none by default)."""
        return {}

    def _plot_dev(self, dev: dict, output_dir: str) -> None:
        """Draw the family's pictures of its dev figures in the run folder (none by default)."""

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str) -> str:
        """Save the fitted pipeline as a folder: ``pipeline.yaml``, ``metadata.json`` and one
        sub-folder of plain-file assets per stage (``vocab.txt``, ``labels.txt``, ``model.keras``).

        Raises:
            DataError: a file cannot be written (a full disk, no permission), naming it.
        """
        self.check_fitted()
        try:
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "pipeline.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(self.get_config(), f, allow_unicode=True, sort_keys=False)
            for name, stage in self.stages.items():
                stage_dir = os.path.join(directory, name)
                os.makedirs(stage_dir, exist_ok=True)
                stage.save_assets(stage_dir)
            with open(os.path.join(directory, "metadata.json"), "w", encoding="utf-8") as f:
                json.dump(self.metadata(), f, indent=2, ensure_ascii=False)
        except OSError as err:
            where = getattr(err, "filename", None) or directory
            raise DataError(
                f"Cannot save the pipeline to {directory}: {where}: {err.strerror or err} "
                "(free disk space or choose another folder, then save again)",
                path=where,
            ) from err
        return directory

    def metadata(self) -> dict:
        import keras

        versions = {"keras-text-pipeline": __version__}
        for dist in ("keras", "tensorflow", "tensorflow-cpu", "jax", "jieba", "nltk", "numpy"):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                pass
        fingerprints = {
            name: s.fingerprint() for name, s in self.stages.items() if hasattr(s, "fingerprint")
        }
        return {
            "format_version": 1,
            "task": self.task,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "keras_backend": keras.backend.backend(),
            "versions": versions,
            "tokenizer_fingerprints": fingerprints,
            "stages": {name: s.type_name for name, s in self.stages.items()},
        }

    @classmethod
    def load(cls, directory: str) -> "Pipeline":
        """Load a saved pipeline: build it from ``pipeline.yaml``, then read each stage's assets.

        Never runs code from the folder and never reads outside it: YAML is read with a safe
        loader, Keras models with ``safe_mode=True``; the folder may hold only plain files and
        folders (no symbolic links, FIFOs or devices) and stage names are plain identifiers.
        Assets are checked against each other (duplicate tokens or labels, vocabulary size
        against the embedding, label count against the model's outputs). A folder from
        another package version loads with a warning. A missing stage folder counts as an
        empty one when the stage keeps no files (git drops empty folders).

        Raises:
            FileNotFoundError: the folder or one of its required files is missing.
            DataError: the folder holds a link or special file, or an asset is malformed or
                does not fit the model (the message names the file).
            ConfigError: ``pipeline.yaml`` is not a valid config.
        """
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{directory} is not a folder holding a saved pipeline")
        root = check_saved_folder(directory)
        for required in ("pipeline.yaml", "metadata.json"):
            if not os.path.isfile(os.path.join(root, required)):
                raise FileNotFoundError(
                    f"{os.path.join(directory, required)} is missing: {directory} is not a complete saved pipeline "
                    "(save one with Pipeline.save or `ktp train`)"
                )
        meta = read_metadata(directory)
        saved = meta.get("versions", {}).get("keras-text-pipeline") if isinstance(meta.get("versions"), dict) else None
        if meta.get("format_version") != 1:
            raise DataError(
                f"{directory} uses saved-pipeline format {short_repr(meta.get('format_version'), 80)}; "
                f"this version ({__version__}) reads format 1",
                path=os.path.join(directory, "metadata.json"),
            )
        if saved != __version__:
            warnings.warn(
                f"{directory} was saved by keras-text-pipeline {str(saved)[:80]}; this is {__version__}. "
                "It is loaded as-is; retrain if predictions look wrong.",
                stacklevel=2,
            )
        pipeline = cls.from_config(load_yaml(os.path.join(root, "pipeline.yaml")))
        for name, stage in pipeline.stages.items():
            stage_dir = inside_folder(root, name)
            if not os.path.isdir(stage_dir):
                _load_without_assets(stage, name, directory)
                continue
            try:
                stage.load_assets(stage_dir)
            except (KtpError, FileNotFoundError):
                raise
            except Exception as err:  # noqa: BLE001  (a tampered or damaged file: report it, one line)
                raise DataError(
                    f"{os.path.join(directory, name)}: the assets of stage {name!r} cannot be loaded: "
                    f"{type(err).__name__}: {one_line(err)}",
                    path=stage_dir,
                ) from err
        check_assets(pipeline, directory)
        pipeline._after_load()
        return pipeline

    def _after_load(self):
        """Hook for task families to restore derived state after assets are read."""

    def export(self, directory: str, **kwargs) -> dict:
        """Export a TensorFlow SavedModel that takes raw text (needs TensorFlow); the task's
        exporter writes it and checks it against this pipeline. See ``pipeline.export``."""
        from .export import export_pipeline

        return export_pipeline(self, directory, **kwargs)


def _load_without_assets(stage, name: str, directory: str) -> None:
    """Load a stage whose folder is missing, as from an empty one: git and some archive tools
    drop empty folders, and a stage that keeps no files (a tokenizer without user words, an
    embedding vectorizer) saves an empty one. A stage that needs files gets the plain error."""
    import tempfile

    with tempfile.TemporaryDirectory() as empty:
        try:
            stage.load_assets(empty)
        except Exception:  # noqa: BLE001  (it needs files that are not there)
            loaded = False
        else:
            loaded = stage.is_fitted
    if not loaded:
        raise FileNotFoundError(f"{os.path.join(directory, name)} is missing: the assets of stage {name!r}")


def as_texts(texts) -> list[str]:
    """Check and listify a batch of texts (a single str is refused: wrap it in a list)."""
    if isinstance(texts, str):
        raise TypeError("Expected a list of texts, got a single str; wrap it in a list: [text]")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"Text {i} is a {type(t).__name__}, not a str")
    return texts


def set_seed(seed):
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
        np.random.seed(seed)
