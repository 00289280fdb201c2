"""Child-process entry point of a SavedModel export from a non-TensorFlow Keras backend."""

import sys

from .base import child_main

child_main(sys.argv[1])
