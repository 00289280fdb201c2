"""Checks that a Keras backend is importable, with install advice when it is not."""

from __future__ import annotations

import importlib.util
import os
import re
import sys

INSTALL_HINT = (
    "TensorFlow is not installed. Install a flavour through the package extras:\n"
    '  pip install -e ".[cpu]"   # tensorflow-cpu (run in the clone)\n'
    '  pip install -e ".[gpu]"   # tensorflow with CUDA\n'
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


#: Lines TensorFlow's C++ runtime writes straight to file descriptor 2 while it is imported,
#: before absl logging is set up (so ``TF_CPP_MIN_LOG_LEVEL`` does not reach them): the absl
#: banner and INFO / WARNING records such as "oneDNN custom operations are on" (and the
#: second line of the CPU-instructions note).
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$"
)


def verbose_requested() -> bool:
    """``KTP_VERBOSE`` set to anything but ``""`` / ``0``, or ``--verbose`` on the command line."""
    return os.environ.get("KTP_VERBOSE", "") not in ("", "0") or "--verbose" in sys.argv[1:]


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up lines held back (``_NATIVE_NOISE``); every
    other line it writes to file descriptor 2, errors included, is written back after.

    Does nothing when TensorFlow is already imported or not installed, when it is not the
    Keras backend, or when every library's lines are wanted (``verbose_requested``)."""
    if (
        "tensorflow" in sys.modules
        or verbose_requested()
        or backend_name() != "tensorflow"
        or importlib.util.find_spec("tensorflow") is None
    ):
        return
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return  # no usable descriptor 2 (an embedding host): import as usual
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not _NATIVE_NOISE.match(line.rstrip("\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
