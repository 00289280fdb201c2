"""Peak resident memory of one ``serving_default`` call of a SavedModel on one long text.

    python benchmarks/serving_peak_memory.py SAVED_MODEL CHARS

Prints one JSON line: ``chars``, ``rss_before_kb`` (resident set before the call), ``peak_kb``
(the peak during it: ``VmHWM`` after resetting it through Linux ``/proc/self/clear_refs``,
else the process's lifetime peak, ``peak_reset`` false) and ``seconds``. The text repeats a
short Chinese sentence; the model is called once first to build its kernels.
``benchmarks/fuzz.py serving`` runs it for each size in a fresh process.
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def status(key):
    """A ``/proc/self/status`` figure in kB (``VmRSS``, ``VmHWM``), or None."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def main(path, n):
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures["serving_default"]
    (spec,) = fn.structured_input_signature[1].values()
    unit = "张伟在北京工作。李红去上海。"
    fn(**{spec.name: tf.constant([unit * 3])})  # warm up: the first call builds the graph's kernels
    text = (unit * (n // len(unit) + 1))[:n]
    batch = tf.constant([text])
    before = status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current resident set
        reset = True
    except OSError:
        reset = False
    t0 = time.perf_counter()
    fn(**{spec.name: batch})
    seconds = time.perf_counter() - t0
    peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"chars": n, "rss_before_kb": before, "peak_kb": peak, "peak_reset": reset, "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
