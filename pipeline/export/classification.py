"""SavedModel export of classification pipelines.

Signatures (see ``pipeline.export.base`` for the common layout): ``serving_default`` /
``serve_text`` take ``text`` (1-D ``tf.string`` of raw texts), ``serve_tokens`` takes
``tokens`` (2-D, padded with ``""``). Outputs: ``label`` ``[batch]``, ``score`` ``[batch]`` (the
best label's score), ``scores`` ``[batch, n_labels]`` (columns in ``labels.txt`` order), plus
``top_k_labels`` / ``top_k_scores`` ``[batch, k]`` when the decoder's ``top_k`` > 1 and
``over_threshold`` (bool ``[batch, n_labels]``) for multi-label decoders. Token -> id lookup,
truncation and padding run in the graph.
"""

from __future__ import annotations

import numpy as np

from ..errors import ExportError
from .base import TEXT_SIGNATURE, TOKENS_SIGNATURE, Exporter, float32_at_least, padded_ids, ragged_tokens_spec, register_exporter, text_input, texts_spec, tokens_input, traced_once
from .text import GraphText, lookup_table


@register_exporter("classification")
class ClassificationExporter(Exporter):
    """Exports a fitted ``ClassificationPipeline``."""

    default_atol = 1e-5

    def check_exportable(self):
        super().check_exportable()
        if getattr(self.pipeline.stage("model"), "model_", None) is None:
            raise ExportError("The model stage holds no Keras model (model_); fit or load the pipeline first")
        vectorizer = self.pipeline.stage("vectorizer")
        for option in ("max_length", "truncation", "padding"):
            if not hasattr(vectorizer, option):
                raise ExportError(f"The vectorizer {type(vectorizer).__name__} has no {option!r} option; cannot export it")

    def pipeline_samples(self):
        """A short text of known tokens, the same upper-cased and two longer than max_length."""
        vocabulary = self.pipeline.stage("vocabulary")
        known = [t for t in vocabulary.tokens_[len(vocabulary.specials):] if t.strip()][:50]
        if not known:
            return []
        max_length = self.pipeline.stage("vectorizer").max_length or 20
        long_tokens = (known * (max_length // len(known) + 2))[: max_length + 7]
        return [" ".join(known[:5]), " ".join(known[:5]).upper(), " ".join(long_tokens), " ".join(reversed(long_tokens))]

    def write_assets(self, asset_dir):
        self.pipeline.stage("vocabulary").save_assets(asset_dir)
        self.pipeline.stage("decoder").save_assets(asset_dir)

    def build(self, module, asset_dir):
        tf = self.tf
        p = self.pipeline
        vectorizer, vocabulary = p.stage("vectorizer"), p.stage("vocabulary")
        keras_model = p.stage("model").model_
        text = GraphText(p.stage("tokenizer")).attach(module)
        module.vocab_table = vocab_table = lookup_table(tf, vocabulary.tokens_, vocabulary.unk_id)

        def model_outputs(tokens):
            ids = padded_ids(vocab_table.lookup(tokens), vectorizer.max_length, vectorizer.truncation, vectorizer.padding)
            return tf.cast(keras_model(ids, training=False), tf.float32)

        answer = traced_once(tf, self.answers(module, model_outputs), ragged_tokens_spec(tf))
        text_spec = texts_spec(tf)
        tokenize = traced_once(tf, text.tokenize, text_spec)

        @tf.function(input_signature=[text_spec], autograph=False)
        def serve_text(text_in):
            return answer(tokenize(text_in))

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")], autograph=False)
        def serve_tokens(tokens):
            return answer(tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, "")))

        module.tokenize = tokenize.get_concrete_function()
        return {TEXT_SIGNATURE: serve_text.get_concrete_function(), TOKENS_SIGNATURE: serve_tokens.get_concrete_function()}

    def answers(self, module, model_outputs):
        """The graph function from ragged tokens to the signature's outputs, given
        ``model_outputs`` (ragged tokens -> the Keras model's float32 outputs)."""
        tf = self.tf
        decoder = self.pipeline.stage("decoder")
        labels = list(decoder.labels_)
        k = min(decoder.top_k, len(labels))
        threshold = float32_at_least(decoder.threshold)
        label_constant = tf.constant(labels, dtype=tf.string)
        module.label_names = tf.Variable(labels, dtype=tf.string, trainable=False, name="label_names")

        def answer(tokens):
            scores = model_outputs(tokens)
            ordered, order = tf.math.top_k(scores, k=len(labels), sorted=True)
            out = {"label": tf.gather(label_constant, order[:, 0]), "score": ordered[:, 0], "scores": scores}
            if k > 1:
                out["top_k_labels"] = tf.gather(label_constant, order[:, :k])
                out["top_k_scores"] = ordered[:, :k]
            if decoder.multi_label:
                out["over_threshold"] = scores >= tf.constant(threshold, tf.float32)
            return out

        return answer

    def compare(self, loaded, samples):
        tf = self.tf
        p = self.pipeline
        answers = p.predict(samples)
        expected = np.asarray(p.predict_scores(samples), dtype=np.float32)
        labels = list(p.stage("decoder").labels_)
        runs = [(TEXT_SIGNATURE, {"text": text_input(tf, samples)}),
                (TOKENS_SIGNATURE, {"tokens": tokens_input(tf, p.tokenize(samples))})]
        problems, max_diff = [], 0.0
        for name, inputs in runs:
            out = {key: value.numpy() for key, value in loaded.signatures[name](**inputs).items()}
            if len(samples):
                max_diff = max(max_diff, float(np.max(np.abs(out["scores"] - expected))))
            for i, want in enumerate(answers):
                problems += _differences(name, i, out, want, expected[i], labels, self.atol)
        return problems, max_diff


def _differences(name, i, out, want, expected_scores, labels, atol):
    found = []
    got_label = out["label"][i].decode("utf-8")
    if got_label != want["label"]:
        found.append((i, f"label {got_label!r} ({name}) != {want['label']!r} (Python predict)"))
    if abs(float(out["score"][i]) - want["score"]) > atol:
        found.append((i, f"score {float(out['score'][i]):.7g} ({name}) != {want['score']:.7g} (Python predict)"))
    row_diff = float(np.max(np.abs(out["scores"][i] - expected_scores)))
    if row_diff > atol:
        found.append((i, f"scores differ by {row_diff:.3g} > atol={atol} ({name})"))
    if "top_k" in want:
        got_top = [t.decode("utf-8") for t in out["top_k_labels"][i]]
        want_top = [t["label"] for t in want["top_k"]]
        if got_top != want_top:
            found.append((i, f"top_k labels {got_top} ({name}) != {want_top} (Python predict)"))
    if "labels" in want:
        got_set = [lab for lab, on in zip(labels, out["over_threshold"][i]) if on]
        if sorted(got_set) != sorted(want["labels"]):
            found.append((i, f"labels over threshold {got_set} ({name}) != {want['labels']} (Python predict)"))
    return found
