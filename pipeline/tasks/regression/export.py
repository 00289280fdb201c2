"""SavedModel export of regression pipelines.

The classification exporter's graph (in-graph tokenization, vocabulary lookup, truncation and
padding, the two text / tokens signatures) with one output: ``value`` ``[batch]`` (float32),
the model's output scaled back with the training mean and standard deviation and clipped to the
decoder's ``minimum`` / ``maximum``.
"""

from __future__ import annotations

import numpy as np

from ...export.base import (
    TEXT_SIGNATURE,
    TOKENS_SIGNATURE,
    register_exporter,
    text_input,
    tokens_input,
)
from ...export.classification import ClassificationExporter


@register_exporter("regression")
class RegressionExporter(ClassificationExporter):
    """Exports a fitted ``RegressionPipeline``; the golden check allows ``atol`` times
    ``max(1, |value|)``."""

    default_atol = 1e-4

    def write_assets(self, asset_dir):
        self.pipeline.stage("vocabulary").save_assets(asset_dir)

    def answers(self, module, model_outputs):
        tf = self.tf
        decoder = self.pipeline.stage("decoder")
        std, mean = tf.constant(np.float32(decoder.std_)), tf.constant(np.float32(decoder.mean_))
        low = tf.constant(np.float32(-np.inf if decoder.minimum is None else decoder.minimum))
        high = tf.constant(np.float32(np.inf if decoder.maximum is None else decoder.maximum))

        def answer(tokens):
            value = tf.reshape(model_outputs(tokens), [-1]) * std + mean
            return {"value": tf.clip_by_value(value, low, high)}

        return answer

    def compare(self, loaded, samples):
        p = self.pipeline
        want = np.array([a["value"] for a in p.predict(samples)], dtype=np.float64)
        runs = [(TEXT_SIGNATURE, {"text": text_input(self.tf, samples)}),
                (TOKENS_SIGNATURE, {"tokens": tokens_input(self.tf, p.tokenize(samples))})]
        problems, max_diff = [], 0.0
        for name, inputs in runs:
            got = loaded.signatures[name](**inputs)["value"].numpy().astype(np.float64)
            for i, (g, w) in enumerate(zip(got, want)):
                diff = abs(g - w)
                max_diff = max(max_diff, diff)
                if diff > self.atol * max(1.0, abs(w)):
                    problems.append((i, f"value {g:.7g} ({name}) != {w:.7g} (Python predict)"))
        return problems, max_diff
