"""Custom Keras layers, written in ``keras.ops`` so they run on every Keras 3 backend.

They are registered under the package name ``keras_text_pipeline`` so that ``model.keras``
files load with ``safe_mode=True`` once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "keras_text_pipeline"


@keras.saving.register_keras_serializable(package=PACKAGE)
class OneHot(keras.layers.Layer):
    """Turns integer ids of shape ``(batch, time)`` into one-hot vectors ``(batch, time, depth)``.

    The one-hot matrix is computed inside the graph, so the data fed to the model stays as ids
    (memory proportional to the number of tokens, not tokens x vocabulary). Id 0 is padding
    and is masked when ``mask_zero`` is set.

    Example:
        >>> import numpy as np
        >>> OneHot(depth=4)(np.array([[2, 0]])).shape
        (1, 2, 4)
    """

    def __init__(self, depth: int, mask_zero: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = True

    def call(self, inputs):
        ids = ops.cast(inputs, "int32")
        vectors = ops.one_hot(ids, self.depth, dtype=self.compute_dtype)
        # Padding (id 0) is an all-zero row, as in the numpy matrix of OneHotVectorizer.to_matrix.
        keep = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), self.compute_dtype), -1)
        return vectors * keep

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "mask_zero": self.mask_zero}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedPooling(keras.layers.Layer):
    """Max or mean over the time axis that ignores masked (padding) steps.

    Example:
        >>> import numpy as np
        >>> x = np.array([[[1.0], [3.0], [100.0]]])
        >>> m = np.array([[True, True, False]])
        >>> float(MaskedPooling("mean")(x, mask=m)[0, 0])
        2.0
    """

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"MaskedPooling mode must be 'max' or 'mean'. Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            if self.mode == "max":
                return ops.max(inputs, axis=1)
            return ops.mean(inputs, axis=1)
        m = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        if self.mode == "max":
            # Padding steps get a very negative value so they never win; an all-padding row
            # (empty text) falls back to zeros rather than -inf.
            neg = ops.cast(-1e9, inputs.dtype)
            pooled = ops.max(ops.where(m > 0, inputs, neg), axis=1)
            any_step = ops.max(m, axis=1) > 0
            return ops.where(any_step, pooled, ops.zeros_like(pooled))
        total = ops.sum(inputs * m, axis=1)
        count = ops.maximum(ops.sum(m, axis=1), 1.0)
        return total / count

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
