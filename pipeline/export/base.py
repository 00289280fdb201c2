"""The exporter base: everything a task family's SavedModel export shares.

An ``Exporter`` subclass per task family (``register_exporter``) says how to build the
``tf.Module`` and its signatures and how to compare the loaded SavedModel with the Python
pipeline; this base does the rest, once:

- the checks before writing (fitted, destination free or ``overwrite``, samples valid);
- writing into a hidden staging folder beside the destination, then an atomic move, so a
  failed export leaves nothing behind;
- from a non-TensorFlow Keras backend (JAX, PyTorch): saving the pipeline and letting a child
  process with ``KERAS_BACKEND=tensorflow`` write the SavedModel (``python -m pipeline.export``);
- the golden check: load the SavedModel back, run every signature on the samples (the
  pipeline's own plus generated odd text), collect the differences and raise ``ExportError``
  listing the first ones;
- the report (``path``, ``signatures``, ``checked``, ``n_samples``,
  ``max_score_difference``, ``keras_backend``).

Signatures follow one layout for every family: ``serving_default`` takes ``text`` (a 1-D
``tf.string`` tensor of raw texts) and tokenizes inside the graph; ``serve_text`` is the same
function under its older name; ``serve_tokens`` takes ``tokens`` (2-D ``tf.string``, one row
of tokens per text, padded with ``""``). The loaded object also has a ``tokenize`` function
(raw text -> ragged tokens).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import numpy as np
import yaml

from stages.backend import require_tensorflow
from stages.registry import registers_task
from ..errors import ExportError, NotFittedError

TEXT_SIGNATURE = "serving_default"
TEXT_ALIAS = "serve_text"
TOKENS_SIGNATURE = "serve_tokens"

#: Odd texts every golden check adds to the pipeline's samples: empty and whitespace-only
#: text, full-width and upper-case letters and digits, accented Latin (precomposed and with
#: combining marks), Chinese, ideographic spaces, tabs and line breaks, a ligature and
#: compatibility characters NFKC expands, Greek capitals, emoji (with a ZWJ sequence and a
#: skin tone), mixed scripts, Chinese punctuation and CJK extension characters.
ODD_SAMPLES = (
    "",
    "   ",
    "\t\n",
    "\r\n",
    "Hello World",
    "ＡＢＣ ｄｅｆ １２３！",
    "iPhone１２很好用，ＯＫ？",
    "Café ÉLAN naïve Ωmega ΟΔΟΣ",
    "Cafe\u0301 e\u0301le\u0300ve a\u0323\u0302",
    "这部电影真好看",
    "\u3000全角\u3000空格\u3000",
    "tab\tsep\nnew line",
    "ﬁne ㎏ ①② ℃ ™",
    "zzqx ☃ 🙂 👩‍💻 👍🏽 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "混合 mixed Текст 日本語 한국어 عربى",
    "《书名》「引号」——破折号……省略号",
    "\u3400\u4dbf \U00020000\U0002a6d6 \u9fd6\u9fff",
    "3.5%的增长，C++和C#，a-b_c",
    'He said "no" -- it\'s (not) fine...',
)
#: Length of the generated long row of every golden check.
LONG_SAMPLE_LENGTH = 10_000

#: task name -> Exporter subclass.
EXPORTERS: dict[str, type] = {}


def register_exporter(task: str):
    """Class decorator: ``cls`` exports pipelines of ``task``."""
    return registers_task(EXPORTERS, task)


def exporter_for(pipeline) -> type:
    """The ``Exporter`` class of ``pipeline``'s task family, or ExportError saying there is none."""
    from . import classification, language_model, tagging, translation  # noqa: F401  (register)

    if getattr(pipeline, "exporter_module", None):
        import importlib

        importlib.import_module(pipeline.exporter_module)  # a plug-in family's exporter registers itself
    task = getattr(pipeline, "task", type(pipeline).__name__)
    cls = EXPORTERS.get(task)
    if cls is None:
        raise ExportError(
            f"There is no SavedModel exporter for {task!r} pipelines; the exporters are: {', '.join(sorted(EXPORTERS))}"
        )
    return cls


def long_sample(words, length: int = LONG_SAMPLE_LENGTH, separator: str = " ") -> str:
    """A text of about ``length`` characters built by cycling ``words`` (or odd text)."""
    words = [w for w in words if w.strip()] or ["好", "x", "，"]
    out, n, i = [], 0, 0
    while n < length:
        w = words[i % len(words)]
        out.append(w)
        n += len(w) + len(separator)
        i += 1
    return separator.join(out)[:length]


class Exporter:
    """Writes one fitted pipeline as a checked SavedModel; subclass per task family.

    Subclasses implement ``build(module, asset_dir) -> signatures`` and ``compare(loaded,
    samples) -> (problems, max_difference)``, and may override ``check_exportable``,
    ``pipeline_samples``, ``write_assets`` and ``default_atol``.

    Args:
        pipeline: the fitted pipeline.
        samples: texts for the golden check (default: ``pipeline_samples()`` plus
            ``ODD_SAMPLES`` and a long row).
        check: run the golden check (strongly recommended).
        atol: largest allowed score difference in the golden check (default per family).
    """

    task = "base"
    default_atol = 1e-5

    def __init__(self, pipeline, samples=None, check: bool = True, atol: float | None = None):
        self.pipeline = pipeline
        self.check = check
        self.atol = self.default_atol if atol is None else atol
        if not isinstance(self.atol, (int, float)) or isinstance(self.atol, bool) or not self.atol >= 0:
            raise ValueError(f"atol must be a number >= 0. Received: atol={atol!r}")
        self._samples_given = samples
        self.tf = None

    # -- hooks ------------------------------------------------------------------------------
    def check_exportable(self) -> None:
        """Raise ExportError (or NotFittedError) when the pipeline cannot be exported."""
        try:
            self.pipeline.check_fitted()
        except NotFittedError as err:
            raise NotFittedError(f"Cannot export: {err}") from None

    def pipeline_samples(self) -> list[str]:
        """Texts made from the pipeline's own vocabulary for the golden check."""
        return []

    def write_assets(self, asset_dir: str) -> None:
        """Write the plain-text assets (vocabularies, labels) that travel with the SavedModel."""

    def build(self, module, asset_dir: str) -> dict:
        """Attach tables and functions to ``module``; return ``{signature name: concrete function}``."""
        raise NotImplementedError

    def compare(self, loaded, samples: list[str]) -> tuple[list, float]:
        """Run the loaded SavedModel on ``samples``; return ``([(sample index, difference)], max score difference)``."""
        raise NotImplementedError

    # -- samples ----------------------------------------------------------------------------
    def samples(self) -> list[str]:
        given = self._samples_given
        if given is None:
            own = self.pipeline_samples()
            return list(ODD_SAMPLES) + own + [long_sample(own)]
        if isinstance(given, str):
            raise TypeError("samples must be a list of texts, not a single str; wrap it in a list: [text]")
        given = list(given)
        if not given:
            raise ValueError("samples is empty: the golden check needs at least one text (or pass samples=None)")
        for i, text in enumerate(given):
            if not isinstance(text, str):
                raise TypeError(f"samples[{i}] is a {type(text).__name__}, not a str")
        return given

    # -- the export -------------------------------------------------------------------------
    def export(self, directory: str, overwrite: bool = False) -> dict:
        """Write, check and move the SavedModel into ``directory``; return the report."""
        import keras

        require_tensorflow("Exporting a SavedModel")
        self.check_exportable()
        samples = self.samples() if self.check else []
        directory = os.path.abspath(os.fspath(directory))
        _check_destination(directory, overwrite)
        parent = os.path.dirname(directory)
        os.makedirs(parent, exist_ok=True)
        # A hidden sibling (same file system, so the final move is atomic), made with
        # os.makedirs so it gets the usual permissions rather than mkdtemp's 0700.
        staging = os.path.join(parent, f".{os.path.basename(directory)}.export-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.makedirs(staging)
        backend = keras.backend.backend()
        try:
            report = self.write(staging) if backend == "tensorflow" else self.write_in_child(staging)
            report.update(checked=False, n_samples=0, max_score_difference=None)
            if self.check:
                try:
                    report.update(self.golden_check(staging, samples))
                except ExportError as err:
                    raise ExportError(f"{err}\nNothing was written to {directory}.") from None
                report["checked"] = True
            if os.path.isdir(directory):
                shutil.rmtree(directory)  # checked by _check_destination: empty, or a SavedModel
            os.replace(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        report["path"] = directory
        report["keras_backend"] = backend
        return report

    def write(self, staging: str) -> dict:
        """Build and save the SavedModel into ``staging`` (TensorFlow backend); return the report."""
        tf = self.tf = require_tensorflow("Exporting a SavedModel")
        with tempfile.TemporaryDirectory() as asset_dir:
            self.write_assets(asset_dir)
            with open(os.path.join(asset_dir, "pipeline.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(self.pipeline.get_config(), f, allow_unicode=True, sort_keys=False)
            module = tf.Module(name=f"keras_text_pipeline_{self.task}")
            for name in sorted(os.listdir(asset_dir)):
                setattr(module, "asset_" + name.replace(".", "_"), tf.saved_model.Asset(os.path.join(asset_dir, name)))
            # Functions reach the module as concrete functions (signatures, ``tokenize``): a
            # polymorphic tf.function attached to it is traced a second time by the save.
            signatures = self.build(module, asset_dir)
            if TEXT_SIGNATURE in signatures:
                signatures.setdefault(TEXT_ALIAS, signatures[TEXT_SIGNATURE])
            track_variables(module, signatures)
            tf.saved_model.save(module, staging, signatures=signatures)
        return {"signatures": {
            name: {
                "inputs": [spec.name for spec in tf.nest.flatten(fn.structured_input_signature)],
                "outputs": sorted(fn.structured_outputs),
            }
            for name, fn in signatures.items()
        }}

    def write_in_child(self, staging: str) -> dict:
        """Save the pipeline and let a ``KERAS_BACKEND=tensorflow`` child process write the SavedModel.

        A Keras 3 model trained under JAX or PyTorch is stored backend-neutrally in
        ``model.keras``, so the child rebuilds it with TensorFlow; the golden check then runs
        here, against this process's pipeline.
        """
        with tempfile.TemporaryDirectory() as tmp:
            saved = os.path.join(tmp, "pipeline")
            self.pipeline.save(saved)
            request, result = os.path.join(tmp, "request.json"), os.path.join(tmp, "result.json")
            with open(request, "w", encoding="utf-8") as f:
                json.dump({"pipeline": saved, "staging": staging, "result": result}, f)
            env = dict(os.environ, KERAS_BACKEND="tensorflow")
            proc = subprocess.run([sys.executable, "-m", "pipeline.export", request], env=env, capture_output=True, text=True)
            if proc.returncode != 0 or not os.path.isfile(result):
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
                raise ExportError(
                    "Writing the SavedModel in a TensorFlow-backend child process failed. Alternatively save the "
                    "pipeline and export it from a process with KERAS_BACKEND=tensorflow "
                    f"(`ktp export FOLDER`).\nChild output:\n{tail}"
                )
            with open(result, encoding="utf-8") as f:
                return json.load(f)

    def golden_check(self, directory: str, samples) -> dict:
        """Load the SavedModel at ``directory`` and compare it with the Python pipeline on
        ``samples``; raise ExportError listing the first differences."""
        tf = self.tf = require_tensorflow("Checking a SavedModel")
        samples = list(samples)
        loaded = tf.saved_model.load(directory)
        problems, max_diff = self.compare(loaded, samples)
        problems = problems + self.compare_tokens(loaded, samples)
        if problems:
            problems.sort(key=lambda p: p[0])  # stable: per text, in the order found
            bad = sorted({i for i, _ in problems})
            lines = [f"  [{i}] {samples[i][:60]!r}: {text[:300]}" for i, text in problems[:8]]
            raise ExportError(
                f"The exported SavedModel disagrees with the Python pipeline on {len(bad)} of {len(samples)} "
                "sample texts. First differences:\n" + "\n".join(lines)
            )
        return {"n_samples": len(samples), "max_score_difference": max_diff}

    def compare_tokens(self, loaded, samples) -> list:
        """The graph tokenizer's tokens against the Python tokenizer's, text by text."""
        tf = self.tf
        if not hasattr(loaded, "tokenize") or not samples:
            return []
        want = self.pipeline_tokens(samples)
        got = loaded.tokenize(tf.constant(samples, tf.string, shape=[len(samples)])).to_list()
        problems = []
        for i, (w, g) in enumerate(zip(want, got)):
            g = [t.decode("utf-8") for t in g]
            if g != list(w):
                problems.append((i, f"graph tokens {g[:12]!r} != Python tokens {list(w)[:12]!r}"))
        return problems

    def pipeline_tokens(self, samples) -> list[list[str]]:
        """The Python tokens the graph's ``tokenize`` must reproduce."""
        return [list(t) for t in self.pipeline.tokenize(samples)]


# -- helpers the family exporters share -----------------------------------------------------------
def _check_destination(directory, overwrite):
    if os.path.isfile(directory):
        raise FileExistsError(f"{directory} is a file; give a folder path for the SavedModel")
    if os.path.isdir(directory) and os.listdir(directory):
        if not os.path.isfile(os.path.join(directory, "saved_model.pb")):
            raise FileExistsError(
                f"{directory} exists and is not empty (and holds no SavedModel); export into a new or empty folder"
            )
        if not overwrite:
            raise FileExistsError(
                f"{directory} already holds a SavedModel; pass overwrite=True (`ktp export --overwrite`) to "
                "replace it, or remove the folder first"
            )


def track_variables(module, signatures, exclude=()) -> None:
    """Attach to ``module`` every variable the traced ``signatures`` use, once each. Keras
    variables (weights, dropout seed state) are tracked through the traced functions, as
    ``keras.export.ExportArchive`` does, rather than by attaching the Keras model itself."""
    seen = {id(v) for v in exclude}
    seen.update(id(v) for v in getattr(module, "model_variables", ()))
    variables = list(getattr(module, "model_variables", ()))
    for fn in signatures.values():
        for v in fn.variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    module.model_variables = variables


def traced_once(tf, fn, *specs):
    """``fn`` as a ``tf.function`` of ``specs``, traced once and called by every signature that
    needs it: the export traces it once and the SavedModel holds one function for it, not a
    copy per signature."""
    return tf.function(fn, input_signature=list(specs), autograph=False)


def texts_spec(tf, name: str = "text"):
    """A 1-D batch of texts."""
    return tf.TensorSpec([None], tf.string, name=name)


def ragged_tokens_spec(tf):
    """A ragged ``[row][token]`` batch of tokens."""
    return tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1)


def padded_ids(ragged_ids, max_length, truncation="post", padding="post"):
    """Ragged ids -> an int32 ``(batch, length)`` tensor, exactly as ``Vectorizer.transform``.

    ``length`` is ``max_length``, or the longest row (at least 1) when it is None; long rows lose
    their tail (``truncation="post"``) or head (``"pre"``); id 0 pads at the end or the start.
    """
    tf = require_tensorflow("Exporting a SavedModel")
    ragged_ids = tf.cast(ragged_ids, tf.int64)
    lengths = ragged_ids.row_lengths()
    dense = ragged_ids.to_tensor(default_value=0)
    batch = tf.shape(dense, out_type=tf.int64)[0]
    width = tf.shape(dense, out_type=tf.int64)[1]
    # One extra column of zeros: every padding position gathers from it.
    dense = tf.concat([dense, tf.zeros([batch, 1], tf.int64)], axis=1)
    if max_length is None:
        length = tf.maximum(tf.reduce_max(tf.concat([lengths, [0]], 0)), 1)
    else:
        length = tf.constant(max_length, tf.int64)
    kept = tf.minimum(lengths, length)
    start = lengths - kept if truncation == "pre" else tf.zeros_like(kept)
    pad_before = length - kept if padding == "pre" else tf.zeros_like(kept)
    j = tf.range(length)[None, :]
    valid = (j >= pad_before[:, None]) & (j < (pad_before + kept)[:, None])
    source = tf.where(valid, start[:, None] + j - pad_before[:, None], width)
    return tf.cast(tf.gather(dense, source, batch_dims=1), tf.int32)


def float32_at_least(threshold: float):
    """The smallest float32 >= ``threshold``: float32 ``score >= it`` equals Python's float64 test."""
    t = np.float32(threshold)
    if float(t) < threshold:
        t = np.nextafter(t, np.float32(np.inf))
    return t


def tokens_input(tf, token_rows):
    """A padded 2-D ``tf.string`` constant for the ``serve_tokens`` signature."""
    width = max([len(t) for t in token_rows] + [1])
    padded = [list(t) + [""] * (width - len(t)) for t in token_rows]
    return tf.constant(padded, dtype=tf.string, shape=[len(token_rows), width])


def text_input(tf, texts):
    """A 1-D ``tf.string`` constant of raw texts (also for an empty list)."""
    return tf.constant(list(texts), dtype=tf.string, shape=[len(texts)])


def child_main(request_path: str) -> None:
    """The child process of ``Exporter.write_in_child``."""
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    from .. import Pipeline

    pipeline = Pipeline.load(request["pipeline"])
    report = exporter_for(pipeline)(pipeline).write(request["staging"])
    with open(request["result"], "w", encoding="utf-8") as f:
        json.dump(report, f)
