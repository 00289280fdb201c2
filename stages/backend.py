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


#: Lines TensorFlow's C++ runtime writes straight to file descriptor 2, past Python's
#: logging and past ``TF_CPP_MIN_LOG_LEVEL``: at import, before absl logging is set up, the absl
#: banner, INFO / WARNING records such as "oneDNN custom operations are on" and the second line
#: of the CPU-instructions note; while a graph runs, the one ERROR-level record that is only a
#: notice ("oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back to ...").
#: Every other ERROR record is kept.
_RECORD = r"\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]" + _RECORD + r".*"
    r"|E" + _RECORD + r"oneDNN supports \S+ only on platforms with \S+\. Falling back to .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$"
)
#: The start of a line that may still become a ``_NATIVE_NOISE`` line: held until its end.
_MAYBE_NOISE = re.compile(rb"^(W(A(R(N(I(N(G(:.*)?)?)?)?)?)?)?|[IWE]\d{0,4}( .*)?|T(o( .*)?)?)$", re.S)


def verbose_requested() -> bool:
    """``KTP_VERBOSE`` set to anything but ``""`` / ``0``, or ``--verbose`` on the command line."""
    return os.environ.get("KTP_VERBOSE", "") not in ("", "0") or "--verbose" in sys.argv[1:]


class NativeNoiseFilter:
    """Routes file descriptor 2 through a pipe whose reader thread drops ``_NATIVE_NOISE``
    lines and writes everything else, as it comes (partial lines such as progress bars
    included), to the original descriptor.

    TensorFlow's C++ runtime writes to the descriptor directly, so a Python-level filter
    cannot see those lines. Use as a context manager; on leaving, descriptor 2 is restored and
    what the pipe still holds is written. Child processes started meanwhile inherit the pipe
    and are filtered while the reader runs. ``active`` is False (and nothing changes) when
    there is no usable descriptor 2."""

    def __init__(self):
        self.active = False

    def __enter__(self):
        import threading

        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return self  # no usable descriptor 2 (an embedding host): leave it alone
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._pump, args=(read_end,), name="ktp-native-log-filter", daemon=True)
        self._thread.start()
        self.active = True
        return self

    def __exit__(self, *exc):
        if not self.active:
            return False
        self.active = False
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # closes this process's write end of the pipe
        # A child process that outlives us may still hold the write end: do not wait on it.
        self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            os.close(self._saved)
        return False

    def _pump(self, read_end: int) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                pending = self._forward(pending + chunk)
            if pending:
                self._write(pending)
        finally:
            os.close(read_end)

    def _forward(self, data: bytes) -> bytes:
        """Write the complete lines of ``data`` that are not noise; return what to hold back."""
        *lines, tail = data.split(b"\n")
        kept = [line + b"\n" for line in lines if not _NATIVE_NOISE.match(line.rstrip(b"\r").decode("utf-8", "replace"))]
        if tail and not _MAYBE_NOISE.match(tail):
            kept.append(tail)
            tail = b""
        if kept:
            self._write(b"".join(kept))
        return tail

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self._saved, data):]
        except OSError:
            pass  # the original stderr is gone (closed pipe): nothing left to tell


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up lines held back (``NativeNoiseFilter``);
    every other line it writes to file descriptor 2, errors included, still comes out.

    Does nothing when TensorFlow is already imported or not installed, when it is not the
    Keras backend, or when every library's lines are wanted (``verbose_requested``)."""
    if (
        "tensorflow" in sys.modules
        or verbose_requested()
        or backend_name() != "tensorflow"
        or importlib.util.find_spec("tensorflow") is None
    ):
        return
    with NativeNoiseFilter():
        import tensorflow  # noqa: F401
