"""The tagging stages under their earlier module name; they live in ``stages.tagging``."""

from .tagging import *  # noqa: F401,F403
from .tagging import __all__  # noqa: F401
