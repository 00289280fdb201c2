"""Join pipelines trained separately into one ensemble pipeline.

``model.ensemble: N`` trains the N members one after another in one process. When members are
trained in parallel instead (on several machines, GPUs or processes, each with its own
``training.seed``), ``join_pipelines`` makes the same ensemble out of the saved folders: a
member trained alone with seed ``s`` is the network that ``ensemble: N`` trains with seed ``s``
(same data, config and backend), so joining the runs of seeds 42, 43 and 44 gives the pipeline
that ``seed: 42, ensemble: 3`` gives.

The members must share everything except the network weights: the same config (up to
``training`` and ``data`` options, the name and ``model.ensemble``) and the same fitted
vocabulary, labels or tags and feature vocabularies (compared file by file). Training on the
same data with the same config gives that.

CLI: ``ktp ensemble RUN_1 RUN_2 ... --output DIR``.

Example:
    >>> from pipeline.ensemble import join_pipelines  # doctest: +SKIP
    >>> joined = join_pipelines(["runs/seed42", "runs/seed43", "runs/seed44"])  # doctest: +SKIP
    >>> joined.save("runs/ensemble")  # doctest: +SKIP
"""

from __future__ import annotations

import filecmp
import logging
import os

from .core import Pipeline

log = logging.getLogger("ktp")

#: Per-member files of the model stage's folder (everything else there must be identical).
MODEL_FILES = ("model.keras",)


def _comparable_config(pipeline) -> dict:
    config = pipeline.get_config()
    config.pop("name", None)
    config.pop("training", None)
    config.pop("data", None)
    for stage in config["stages"].values():
        stage.pop("ensemble", None)
    return config


def _differences(a: dict, b: dict, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(where)
            else:
                out.extend(_differences(a[key], b[key], where))
        return out
    return [] if a == b else [path]


def _asset_differences(first: str, other: str, skip=()) -> list[str]:
    """Files that differ (or exist on one side only) between two stage folders."""
    names = set(os.listdir(first)) | set(os.listdir(other))
    out = []
    for name in sorted(names - set(skip)):
        a, b = os.path.join(first, name), os.path.join(other, name)
        if not (os.path.isfile(a) and os.path.isfile(b)) or not filecmp.cmp(a, b, shallow=False):
            out.append(name)
    return out


def join_pipelines(directories) -> Pipeline:
    """Join saved pipelines (folders) into one ensemble pipeline, returned unsaved.

    Args:
        directories: two or more folders of saved pipelines of the same task and config,
            each holding one network (not already an ensemble).

    Returns:
        The first pipeline, with its model stage answering with the mean of all members
        (``model.ensemble`` set to their number; see the model stage's ``combine``).

    Raises:
        ValueError: fewer than two folders, a member that is an ensemble already, a model
            stage that cannot join members, or members that differ in config or in fitted
            vocabularies, labels or features (the message names what differs).
    """
    directories = [str(d) for d in directories]
    if len(directories) < 2:
        raise ValueError(f"An ensemble needs at least two saved pipelines; got {len(directories)}")
    pipelines = [Pipeline.load(d) for d in directories]
    first, base = pipelines[0], _comparable_config(pipelines[0])
    model_name = next(name for name, stage in first.stages.items() if stage.kind == "model")
    for directory, p in zip(directories, pipelines):
        model = p.stages[model_name]
        if not hasattr(model, "combine"):
            raise ValueError(f"{directory}: model stage {model.type_name!r} cannot be joined into an ensemble (it has no combine)")
        if getattr(model, "ensemble", 1) != 1:
            raise ValueError(
                f"{directory} is an ensemble of {model.ensemble} networks already; join the single-network runs instead"
            )
    for directory, p in zip(directories[1:], pipelines[1:]):
        if type(p) is not type(first):
            raise ValueError(f"{directory} is a {p.task} pipeline but {directories[0]} is a {first.task} pipeline")
        differ = _differences(base, _comparable_config(p))
        if differ:
            raise ValueError(
                f"{directory} and {directories[0]} have different configs ({', '.join(differ)}); "
                "ensemble members must be trained from the same config (only training and data options may differ)"
            )
        for name in first.stages:
            skip = MODEL_FILES if name == model_name else ()
            differ = _asset_differences(os.path.join(directories[0], name), os.path.join(directory, name), skip)
            if differ:
                raise ValueError(
                    f"{directory} and {directories[0]} differ in the fitted assets of stage {name!r} "
                    f"({', '.join(differ)}): ensemble members must be trained on the same data"
                )
    networks = []
    for i, p in enumerate(pipelines):
        network = p.stages[model_name].model_
        network.name = f"member_{i + 1}"
        networks.append(network)
    model = first.stages[model_name]
    model.ensemble = len(networks)
    model.combine(networks)
    log.info("Joined %d pipelines into one ensemble: %s", len(networks), ", ".join(directories))
    return first
