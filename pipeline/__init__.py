"""keras-text-pipeline: declarative Keras text pipelines for Chinese and English.

Example:
    >>> from pipeline import Pipeline
    >>> p = Pipeline.from_yaml("data/configs/quickstart_en.yaml")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .errors import BatchError, ConfigError, DataError, ExportError, KtpError, NotFittedError, UnsupportedInGraph  # noqa: E402
from .core import Pipeline, TASKS  # noqa: E402
from . import classification  # noqa: E402,F401  (registers the classification task)
from . import seq2seq  # noqa: E402,F401  (registers the translation and language_model tasks)
from . import tagging  # noqa: E402,F401  (registers the tagging task)
from .tasks import regression  # noqa: E402,F401  (registers the regression task: the plug-in example)

__all__ = [
    "Pipeline", "KtpError", "ConfigError", "DataError", "NotFittedError", "ExportError", "UnsupportedInGraph", "BatchError",
    "TASKS", "__version__",
]
