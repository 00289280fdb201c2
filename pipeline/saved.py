"""A saved pipeline's folder: stage names, metadata, and the checks loading makes.

``Pipeline.save`` writes one folder per stage (named after the stage) beside
``pipeline.yaml`` and ``metadata.json``; ``Pipeline.load`` checks the folder holds plain files
only (``check_saved_folder``), that each stage folder lies inside it (``inside_folder``), and
that the loaded assets agree with each other and with the model (``check_assets``).
"""

from __future__ import annotations

import json
import os
import re
import stat

from stages.errors import one_line, short_repr

from .errors import ConfigError, DataError

#: A stage name is a plain identifier: it names the stage's folder in a saved pipeline, so it
#: can never point outside it (``../x``, ``/etc``) or clash with the folder's own files.
STAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def check_stage_name(name) -> None:
    """Raise ConfigError unless ``name`` is a plain identifier of at most 64 characters."""
    if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
        raise ConfigError(
            "stages",
            "must name each stage with a plain identifier (letters, digits and _, not starting with a digit, "
            "at most 64 characters, e.g. tokenizer or source_vocabulary): the name is the stage's folder in a "
            "saved pipeline",
            name,
        )


def _flat_layers(model):
    flatten = getattr(model, "_flatten_layers", None)
    return list(flatten()) if flatten is not None else list(getattr(model, "layers", []))


def _input_rows(layer):
    for attr in ("input_dim", "depth"):  # keras.layers.Embedding, stages.layers.OneHot
        value = getattr(layer, attr, None)
        if isinstance(value, int):
            return value
    return None


#: The most bytes of ``metadata.json`` that loading reads.
MAX_METADATA_BYTES = 1 << 20


def read_metadata(directory: str) -> dict:
    """``metadata.json`` of a saved folder as a dict, or a DataError saying what is wrong."""
    path = os.path.join(directory, "metadata.json")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_METADATA_BYTES + 1)
    except OSError as err:
        raise DataError(f"{path} cannot be read: {err.strerror or err}", path=path) from None
    if len(data) > MAX_METADATA_BYTES:
        raise DataError(f"{path} is larger than {MAX_METADATA_BYTES:,} bytes; it is not a pipeline's metadata", path=path)
    try:
        meta = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise DataError(f"{path} is not valid JSON: {one_line(err, 200)}", path=path) from None
    if not isinstance(meta, dict):
        raise DataError(f"{path} must hold a JSON object", path=path)
    return meta


def check_saved_folder(directory: str) -> str:
    """Check that a saved pipeline folder holds only plain files and folders; return its real
    path.

    Every entry under it is looked at without following links: a symbolic link (to a file,
    a folder, or itself), a FIFO, a socket or a device anywhere inside is refused, so nothing
    that loading opens can lie outside the folder or block. (The folder itself may be reached
    through a link: it is resolved first.)

    Raises:
        DataError: naming the first such entry, or a sub-folder that cannot be listed.
    """
    root = os.path.realpath(directory)

    def unreadable(err):
        raise DataError(f"{err.filename}: cannot be listed ({err.strerror}); the saved folder must be readable", path=err.filename)

    for here, dirs, files in os.walk(root, onerror=unreadable, followlinks=False):
        for entry in sorted(dirs + files):
            path = os.path.join(here, entry)
            shown = os.path.join(directory, os.path.relpath(path, root))
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise DataError(
                    f"{shown} is a symbolic link; a saved pipeline folder must hold plain files and folders only, "
                    "so that loading never reads outside it (copy the file in instead of linking it)",
                    path=shown,
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise DataError(
                    f"{shown} is not a regular file or folder (a FIFO, socket or device); a saved pipeline "
                    "folder must hold plain files and folders only",
                    path=shown,
                )
    return root


def inside_folder(root: str, name: str) -> str:
    """``root/name``, refusing any name whose path resolves outside ``root`` (a real path)."""
    check_stage_name(name)
    path = os.path.join(root, name)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root or real == root:
        raise DataError(f"{path} lies outside the saved folder {root}; stage folders must be inside it", path=path)
    return path


def check_assets(pipeline, directory: str) -> None:
    """Check loaded assets against each other and the model; DataError naming the file.

    Duplicate tokens, labels or tags; a vocabulary whose size is not the number of rows of
    the embedding (or one-hot depth) that reads its ids; a label or tag list whose length
    is not the model's output size.
    """
    for name, stage in pipeline.stages.items():
        for attr, file in (("tokens_", "vocab.txt"), ("labels_", "labels.txt"), ("tags_", "tags.txt")):
            items = getattr(stage, attr, None)
            if isinstance(items, (list, tuple)):
                seen = set()
                for i, item in enumerate(items):
                    if item in seen:
                        raise DataError(
                            f"{os.path.join(directory, name, file)}: line {i + 1} repeats {short_repr(item, 80)}; "
                            "each line must be different (the file is damaged or was edited)",
                            path=os.path.join(directory, name, file),
                        )
                    seen.add(item)
    models = [(n, s) for n, s in pipeline.stages.items() if s.kind == "model" and getattr(s, "model_", None) is not None]
    for vocab_name, layer_names in vocabulary_layers(pipeline).items():
        size = len(pipeline.stages[vocab_name].tokens_)
        for model_name, model in models:
            for layer in _flat_layers(model.model_):
                if layer.name not in layer_names:
                    continue
                rows = _input_rows(layer)
                if rows is not None and rows != size:
                    raise DataError(
                        f"{os.path.join(directory, vocab_name, 'vocab.txt')} has {size} tokens but the layer "
                        f"{layer.name!r} of {os.path.join(directory, model_name, 'model.keras')} takes {rows} ids; "
                        "the two files do not belong together",
                        path=os.path.join(directory, vocab_name, "vocab.txt"),
                    )
    for name, stage in pipeline.stages.items():
        if stage.kind != "decoder":
            continue
        for attr, file in (("labels_", "labels.txt"), ("tags_", "tags.txt")):
            items = getattr(stage, attr, None)
            if items is None:
                continue
            for model_name, model in models:
                outputs = getattr(model.model_, "outputs", None) or []
                width = outputs[0].shape[-1] if len(outputs) == 1 and outputs[0].shape else None
                if isinstance(width, int) and width != len(items):
                    raise DataError(
                        f"{os.path.join(directory, name, file)} lists {len(items)} {attr[:-1]} but the model "
                        f"{os.path.join(directory, model_name, 'model.keras')} scores {width}; "
                        "the two files do not belong together",
                        path=os.path.join(directory, name, file),
                    )


def vocabulary_layers(pipeline) -> dict:
    """Which model layers read the ids of which vocabulary stage: ``{vocabulary stage
    name: layer names}``. With one vocabulary, the vectorizer's input layer (``embedding``
    or ``onehot``; ``token_embedding`` in a language model); a family with a source and a
    target side (``side(kind, which)``) maps ``source_embedding`` / ``target_embedding``."""
    vocabularies = [n for n, s in pipeline.stages.items() if s.kind == "vocabulary" and getattr(s, "tokens_", None) is not None]
    if len(vocabularies) == 1:
        return {vocabularies[0]: {"embedding", "onehot", "token_embedding"}}
    side = getattr(pipeline, "side", None)
    if side is None or len(vocabularies) != 2:
        return {}
    out = {}
    for which in ("source", "target"):
        try:
            stage = side("vocabulary", which)
        except Exception:  # noqa: BLE001  (no such side: nothing to check)
            continue
        for n, s in pipeline.stages.items():
            if s is stage:
                out[n] = {f"{which}_embedding"}
    return out
