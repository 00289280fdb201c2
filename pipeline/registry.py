"""The stage registry (defined in ``stages.registry``, the lower layer; re-exported here)."""

from stages.registry import KINDS, all_classes, get, names, register, registers_task  # noqa: F401
