"""Checks that a Keras backend is importable, with install advice when it is not."""

from __future__ import annotations

import importlib.util
import os

INSTALL_HINT = (
    "TensorFlow is not installed. Install a flavour through the package extras:\n"
    "  pip install 'keras-text-pipeline[cpu]'   # tensorflow-cpu\n"
    "  pip install 'keras-text-pipeline[gpu]'   # tensorflow with CUDA\n"
    "or use another Keras backend, e.g. `pip install jax` and set KERAS_BACKEND=jax "
    "(export to SavedModel still needs TensorFlow)."
)


def backend_name() -> str:
    """The Keras backend that will be used (from KERAS_BACKEND or keras.json)."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    cfg = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json")
    try:
        import json

        with open(cfg) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def ensure_backend() -> None:
    """Raise ImportError with install advice when the chosen backend's package is missing."""
    name = backend_name()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}.get(name, name)
    if importlib.util.find_spec(module) is None:
        if module == "tensorflow":
            raise ImportError(INSTALL_HINT)
        raise ImportError(f"KERAS_BACKEND={name} but the {module!r} package is not installed: pip install {module}")


def require_tensorflow(feature: str = "This feature"):
    """Import and return TensorFlow, or raise ImportError saying how to install it."""
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(f"{feature} needs TensorFlow. " + INSTALL_HINT)
    import tensorflow as tf

    return tf
