"""How a batch job runs one pipeline: what the tokenizer pool computes for each text, and the
model calls on length-sorted batches of the encoded rows."""

from __future__ import annotations

import logging

import numpy as np

from .workers import _encode_texts

log = logging.getLogger("ktp")

# Padded lengths are rounded up to a multiple of this so the model sees few distinct shapes
# (each new shape can cost a retrace) while padding stays small.
LENGTH_STEP = 8


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
