"""The project's errors (defined in ``stages.errors``, the lower layer, and re-exported here)."""

from stages.errors import (  # noqa: F401
    BatchError,
    ConfigError,
    DataError,
    ExportError,
    KtpError,
    NotFittedError,
    unknown_key_error,
)
