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

from . import __version__
from .config import check_top_level, load_yaml, validate_section
from .errors import ConfigError, NotFittedError
from .registry import KINDS
from .registry import get as get_stage_class

log = logging.getLogger("ktp")

#: task name -> Pipeline subclass; filled by ``register_task``.
TASKS: dict[str, type] = {}


def register_task(name: str):
    def wrap(cls):
        cls.task = name
        TASKS[name] = cls
        return cls

    return wrap


def _stage_type_to_kind(type_name: str, path: str):
    from . import registry

    matches = [kind for kind in KINDS if type_name in registry.names(kind)]
    if not matches:
        every = sorted(n for kind in KINDS for n in registry.names(kind))
        raise ConfigError("type", f"must name a registered stage type: one of {', '.join(every)}", type_name, path)
    return matches[0]


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

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str) -> str:
        """Save the fitted pipeline as a folder: ``pipeline.yaml``, ``metadata.json`` and one
        sub-folder of plain-file assets per stage (``vocab.txt``, ``labels.txt``, ``model.keras``)."""
        self.check_fitted()
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "pipeline.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(self.get_config(), f, allow_unicode=True, sort_keys=False)
        for name, stage in self.stages.items():
            stage_dir = os.path.join(directory, name)
            os.makedirs(stage_dir, exist_ok=True)
            stage.save_assets(stage_dir)
        with open(os.path.join(directory, "metadata.json"), "w", encoding="utf-8") as f:
            json.dump(self.metadata(), f, indent=2, ensure_ascii=False)
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

        Never runs code from the folder: YAML is read with ``safe_load`` and Keras models with
        ``safe_mode=True``. A folder from another package version loads with a warning.
        """
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{directory} is not a folder holding a saved pipeline")
        for required in ("pipeline.yaml", "metadata.json"):
            if not os.path.isfile(os.path.join(directory, required)):
                raise FileNotFoundError(
                    f"{os.path.join(directory, required)} is missing: {directory} is not a complete saved pipeline "
                    "(save one with Pipeline.save or `ktp train`)"
                )
        with open(os.path.join(directory, "metadata.json"), encoding="utf-8") as f:
            try:
                meta = json.load(f)
            except ValueError as err:
                raise ValueError(f"{directory}/metadata.json is not valid JSON: {err}") from None
        saved = meta.get("versions", {}).get("keras-text-pipeline")
        if meta.get("format_version") != 1:
            raise ValueError(
                f"{directory} uses saved-pipeline format {meta.get('format_version')!r}; "
                f"this version ({__version__}) reads format 1"
            )
        if saved != __version__:
            warnings.warn(
                f"{directory} was saved by keras-text-pipeline {saved}; this is {__version__}. "
                "It is loaded as-is; retrain if predictions look wrong.",
                stacklevel=2,
            )
        pipeline = cls.from_config(load_yaml(os.path.join(directory, "pipeline.yaml")))
        for name, stage in pipeline.stages.items():
            stage_dir = os.path.join(directory, name)
            if not os.path.isdir(stage_dir):
                raise FileNotFoundError(f"{stage_dir} is missing: the assets of stage {name!r}")
            stage.load_assets(stage_dir)
        pipeline._after_load()
        return pipeline

    def _after_load(self):
        """Hook for task families to restore derived state after assets are read."""

    def export(self, directory: str, **kwargs) -> dict:
        """Export a TensorFlow SavedModel that takes raw text (needs TensorFlow); the task's
        exporter writes it and checks it against this pipeline. See ``pipeline.export``."""
        from .export import export_pipeline

        return export_pipeline(self, directory, **kwargs)


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
