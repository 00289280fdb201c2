"""Text classification (many-to-one): tokenizer -> vocabulary -> vectorizer -> rnn_classifier -> label."""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from .config import CLASSIFICATION_DATA, CLASSIFICATION_TRAINING
from .core import Pipeline, as_texts, register_task
from .errors import ConfigError
from .metrics import classification_report, multilabel_report

log = logging.getLogger("ktp")


@register_task("classification")
class ClassificationPipeline(Pipeline):
    """Single- or multi-label text classification.

    Example:
        >>> from pipeline import Pipeline
        >>> p = Pipeline.from_config({"stages": {
        ...     "tokenizer": {"type": "char"}, "vocabulary": {},
        ...     "vectorizer": {"type": "onehot", "max_length": 16},
        ...     "model": {"type": "rnn_classifier", "cell": "gru", "units": 8},
        ...     "decoder": {"type": "label"}}})
        >>> _ = p.fit(["好看", "难看", "很好", "很差"], ["pos", "neg", "pos", "neg"], epochs=1, verbose=0)
        >>> sorted(p.predict(["好"])[0])
        ['label', 'score']
    """

    required_kinds = ("tokenizer", "vocabulary", "vectorizer", "model", "decoder")
    data_options = CLASSIFICATION_DATA
    training_options = CLASSIFICATION_TRAINING

    def _read(self, path: str, need_targets: bool):
        """A TSV / CSV / JSONL / fastText / plain-text file (``data.format``): a ``Corpus`` of
        ``texts`` and ``labels`` (``pipeline.readers.read_corpus``)."""
        from .readers import read_corpus

        return read_corpus(path, self.data, need_labels=need_targets)

    # -- text -> ids ------------------------------------------------------------------------
    def tokenize(self, texts) -> list[list[str]]:
        return self.stage("tokenizer").transform(as_texts(texts))

    def encode_tokens(self, tokens) -> np.ndarray:
        """Token lists -> padded id array, as the model takes it."""
        return self.stage("vectorizer").transform(self.stage("vocabulary").transform(tokens))

    def encode(self, texts) -> np.ndarray:
        """Texts -> padded id array, as the model takes it."""
        return self.encode_tokens(self.tokenize(texts))

    # -- training ---------------------------------------------------------------------------
    def _train(self, texts, labels, validation_data, output_dir, options, callbacks):
        """Fit tokenizer, vocabulary, vectorizer and decoder on the training texts and labels,
        then train the network (each ensemble member in turn, joined by ``model.combine``); the
        run folder gets the dev confusion matrix besides the common pictures."""
        texts, labels = self._paired(texts, labels)
        tokenizer, vocabulary, vectorizer, model, decoder = (self.stage(k) for k in self.required_kinds)
        if options.get("length_buckets") and not getattr(vectorizer, "mask", False):
            raise ConfigError(
                "length_buckets", "needs a vectorizer that masks its padding (stages.vectorizer.mask: true): "
                "without the mask the padding is part of the input, and padding each batch to its own "
                "width would change what the network reads", True, "training")

        t0 = time.perf_counter()
        tokenizer.fit(texts)
        tokens = tokenizer.transform(texts)
        log.info("Tokenized %d texts in %.1fs", len(texts), time.perf_counter() - t0)
        vocabulary.fit(tokens)
        log.info("Vocabulary: %d tokens (max_size=%s, min_freq=%s)", len(vocabulary), vocabulary.max_size, vocabulary.min_freq)
        vectorizer.fit(vocabulary=vocabulary)
        if getattr(vectorizer, "pretrained_coverage_", None):
            cov = vectorizer.pretrained_coverage_
            log.info("Pretrained vectors cover %.1f%% of the vocabulary", 100 * cov["coverage"])
        x = self.encode_tokens(tokens)
        if vectorizer.last_truncated_:
            log.info("%d of %d training texts were longer than max_length=%s and truncated", vectorizer.last_truncated_, len(texts), vectorizer.max_length)
        decoder.fit(labels)
        y = decoder.encode(labels)

        val = None
        if validation_data is not None:
            val_texts, val_labels = validation_data
            val_texts = as_texts(val_texts)
            val_tokens = tokenizer.transform(val_texts)
            self.dev_coverage_ = vocabulary.coverage(val_tokens)
            log.info("Vocabulary covers %.1f%% of dev tokens", 100 * self.dev_coverage_["coverage"])
            val = (self.encode_tokens(val_tokens), decoder.encode(list(val_labels)))

        n_members = getattr(model, "ensemble", 1)  # model stages of other packages may not have it
        buckets = options.get("length_buckets")
        fit_val = self._length_batches(*val, options["batch_size"], shuffle=False) if buckets and val is not None else val

        def train_data(seed):
            # each member draws its own shuffled batches; the dev batches are the same for all
            return self._length_batches(x, y, options["batch_size"], shuffle=True, seed=seed) if buckets else (x, y)

        def build(i, seed, data):
            model.build(
                vectorizer.input_layer(len(vocabulary)),
                **self._model_outputs(),
                initial_weights=self._initial_weights(vectorizer, seed),
                **({"member": i} if n_members > 1 else {}),
            )

        self._fit_networks(options, output_dir, callbacks, build, train_data, fit_val, n_members=n_members)
        return validation_data

    def _length_batches(self, x, y, batch_size: int, shuffle: bool, seed=None):
        """``training.length_buckets``: the padded id rows cut back to their real tokens, in
        ``stages.batching.LengthBatches`` of texts of similar length, each batch padded to its
        longest text (rounded up to 8). With masked padding the network reads each text the same
        at any width; the saving is the steps over padding (a batch of short texts no longer runs
        ``max_length`` steps). Training batches are shuffled (``seed`` None: a fresh order each
        run), dev batches keep length order."""
        from stages.batching import LengthBatches

        lengths = np.count_nonzero(x, axis=1)  # id 0 is padding only
        pre = self.stage("vectorizer").padding == "pre"
        rows = [row[len(row) - n:] if pre else row[:n] for row, n in zip(x, lengths)]
        return LengthBatches({"ids": rows, "y": list(y)}, inputs=("ids",), target="y", batch_size=batch_size,
                             shuffle=shuffle, seed=seed, dict_inputs=False, example_target=True)

    def _model_outputs(self) -> dict:
        """What the model stage's ``build`` needs to know of the targets: their number and kind."""
        decoder = self.stage("decoder")
        return {"n_outputs": len(decoder.labels_), "multi_label": decoder.multi_label}

    def _plot_dev(self, dev: dict, output_dir: str) -> None:
        if "confusion_matrix" in dev:
            from .plots import plot_confusion_matrix

            plot_confusion_matrix(dev["confusion_matrix"], dev["labels"], os.path.join(output_dir, "confusion_matrix.png"), title="dev confusion matrix")

    # -- inference --------------------------------------------------------------------------
    def predict_scores(self, texts, batch_size: int | None = None) -> np.ndarray:
        """Score of every label for every text: ``(texts, labels)``, columns in ``labels``."""
        self.check_fitted()
        x = self.encode(texts)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.stage("model").transform(x, batch_size=batch_size or self.training["predict_batch_size"])

    def predict(self, texts, batch_size: int | None = None) -> list[dict]:
        """Answers for ``texts``: one dict per text with at least ``label`` and ``score``."""
        return self.stage("decoder").decode(self.predict_scores(texts, batch_size))

    def predict_tokens(self, tokens, batch_size: int | None = None) -> list[dict]:
        """Answers for texts already split by ``tokenize`` (lets batch jobs tokenize in worker
        processes and run the model in the main one)."""
        self.check_fitted()
        x = self.encode_tokens(tokens)
        if len(x) == 0:
            return []
        scores = self.stage("model").transform(x, batch_size=batch_size or self.training["predict_batch_size"])
        return self.stage("decoder").decode(scores)

    @property
    def labels(self) -> list[str]:
        self.check_fitted()
        return list(self.stage("decoder").labels_)

    def evaluate(self, texts, labels, batch_size: int | None = None) -> dict:
        """Accuracy, macro / micro precision, recall and F1, per-class figures and the confusion matrix."""
        texts = as_texts(texts)
        labels = list(labels)
        if len(texts) != len(labels):
            raise ValueError(f"Got {len(texts)} texts but {len(labels)} labels")
        decoder = self.stage("decoder")
        scores = self.predict_scores(texts, batch_size)
        y_true = decoder.encode(labels)
        if decoder.multi_label:
            return multilabel_report(y_true, scores >= decoder.threshold, decoder.labels_)
        return classification_report(y_true, scores.argmax(axis=1), decoder.labels_)
