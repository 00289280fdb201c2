"""Keras backend checks (defined in ``stages.backend``, the lower layer; re-exported here)."""

from stages.backend import INSTALL_HINT, backend_name, ensure_backend, require_tensorflow  # noqa: F401
