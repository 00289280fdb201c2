"""The project's errors (defined in ``stages.errors``, the lower layer, and re-exported here)."""

from stages.errors import (  # noqa: F401
    BatchError,
    ConfigError,
    DataError,
    ExportError,
    KtpError,
    NotFittedError,
    UnsupportedInGraph,
    unknown_key_error,
)
