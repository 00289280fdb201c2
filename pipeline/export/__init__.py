"""Export a fitted pipeline as a TensorFlow SavedModel that takes raw text.

The SavedModel is self-contained: a process that only has TensorFlow (not this package, nor
jieba or nltk) can load it with ``tf.saved_model.load``, serve it with TF Serving or drive it
with ``saved_model_cli``. Tokenization runs inside the graph in stock TensorFlow ops: the
per-character normalisation table, ``char`` / ``whitespace`` splitting, jieba's dictionary
route and HMM (``jieba_graph``) and nltk's rules (``nltk_graph``). A tokenizer option that
cannot be reproduced exactly is refused at export with an error naming it.

Every family's signatures share one layout (``base``): ``serving_default`` (also
``serve_text``) takes ``text``, a 1-D ``tf.string`` tensor of raw texts; ``serve_tokens``
takes ``tokens`` (2-D, padded with ``""``); the loaded object has a ``tokenize`` function.
The outputs are the family's (``classification``, ``tagging``, ``translation``,
``language_model``; ``pipeline.tasks.regression.export`` for the regression plug-in).

After writing, the export loads the SavedModel back and compares its answers and its graph
tokens with the Python pipeline on sample inputs (the golden check, including generated odd
text and a 10,000-character row); any difference raises ``ExportError`` and nothing is left at
the destination.

Only this package (and the input modules) speak TensorFlow directly: it is imported lazily by
``Pipeline.export``.
"""

from __future__ import annotations

from ..errors import ExportError
from .base import (  # noqa: F401
    EXPORTERS,
    ODD_SAMPLES,
    TEXT_ALIAS,
    TEXT_SIGNATURE,
    TOKENS_SIGNATURE,
    Exporter,
    exporter_for,
    float32_at_least,
    padded_ids,
    register_exporter,
)
from .text import GraphText  # noqa: F401


def export_pipeline(pipeline, directory: str, samples=None, check: bool = True, overwrite: bool = False,
                    atol: float | None = None) -> dict:
    """Write a fitted pipeline of any task family as a TensorFlow SavedModel and check it.

    Args:
        pipeline: a fitted pipeline (any task family with an exporter: classification, tagging, translation, language model, regression).
        directory: the SavedModel folder to write. It must not exist yet or be empty, unless
            ``overwrite`` is set and it holds an earlier SavedModel.
        samples: texts for the golden check (default: the pipeline's own sample texts, generated
            odd text and a 10,000-character row).
        check: load the SavedModel back and compare it with the Python pipeline (strongly
            recommended; turn off only to debug an export that fails the check).
        overwrite: replace an existing SavedModel at ``directory``.
        atol: largest allowed score difference in the golden check (default per family).

    Returns:
        A report: ``path``, ``signatures`` (name -> input and output names), ``n_samples``
        (texts checked), ``max_score_difference``, ``checked``, ``keras_backend``.

    Raises:
        ExportError: the pipeline cannot be exported (the message names the option), or the
            SavedModel's answers differ from the Python pipeline's (the first differences listed).
        ImportError: TensorFlow is not installed (with install advice).
        FileExistsError: ``directory`` is in the way.

    Example:
        >>> report = pipeline.export("saved_models/sentiment/saved_model")  # doctest: +SKIP
        >>> report["signatures"]["serving_default"]["inputs"]  # doctest: +SKIP
        ['text']
    """
    exporter = exporter_for(pipeline)(pipeline, samples=samples, check=check, atol=atol)
    return exporter.export(directory, overwrite=overwrite)


#: The name earlier versions exported under.
export_saved_model = export_pipeline


def golden_check(pipeline, directory: str, samples, atol: float | None = None) -> dict:
    """Compare an existing SavedModel at ``directory`` with ``pipeline`` on ``samples``.

    Returns:
        ``{"n_samples": ..., "max_score_difference": ...}``.

    Raises:
        ExportError: listing the first differing inputs.
    """
    exporter = exporter_for(pipeline)(pipeline, samples=samples, atol=atol)
    return exporter.golden_check(directory, exporter.samples())


__all__ = ["export_pipeline", "export_saved_model", "golden_check", "ExportError", "GraphText"]
