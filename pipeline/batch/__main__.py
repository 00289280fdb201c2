"""``python -m pipeline.batch MODEL_DIR --input ... --output ...``: the same as ``ktp predict``."""

import sys

from .command import main

sys.exit(main())
