"""The tokenizer pool of a batch job: the pipeline's pure-Python encoding (tokenisation) runs in
worker processes while the model works on the previous chunk, and this process takes over any
piece no worker has started when it would otherwise wait."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..errors import BatchError

log = logging.getLogger("ktp")

_WORKER_ENCODE = None


def _die_with_parent():
    # A killed parent must not leave tokenizer workers behind (they would wait forever on the
    # task pipe, whose write end they inherited). Linux only; elsewhere the pool's own
    # clean-up handles ordinary exits.
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _init_worker(encode, parent_pid):
    global _WORKER_ENCODE
    _WORKER_ENCODE = encode
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if os.getppid() != parent_pid:
        os._exit(1)


def _encode_texts(encode, texts):
    """Encode texts, isolating failures: returns ``(results, {index: error message})``."""
    try:
        return encode(texts), {}
    except Exception:  # noqa: BLE001  (one bad text must not sink its neighbours)
        results, errors = [], {}
        for i, text in enumerate(texts):
            try:
                results.append(encode([text])[0])
            except Exception as err:  # noqa: BLE001
                results.append(None)
                errors[i] = f"tokenization failed: {type(err).__name__}: {err}"
        return results, errors


def _worker_encode(texts):
    return _encode_texts(_WORKER_ENCODE, texts)


def _picklable(obj) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
        return True
    except Exception:  # noqa: BLE001
        return False


class _Immediate:
    """Encoding done in this process, behind the same ``get()`` as the pool's handles."""

    def __init__(self, fn, *args):
        self._fn, self._args = fn, args

    def get(self):
        return [self._fn(*self._args)]


class _Pending:
    """The futures of one chunk's pieces, and the pieces, so this process can take over any
    piece no worker has started when it needs the results (it would only wait otherwise)."""

    def __init__(self, futures, pieces, encode):
        self.futures = futures
        self.pieces = pieces
        self.encode = encode

    def get(self):
        results = [None] * len(self.futures)
        try:
            # Workers take pieces from the front; this process helps from the back.
            for i in reversed(range(len(self.futures))):
                if self.futures[i].cancel():
                    results[i] = _encode_texts(self.encode, self.pieces[i])
            for i, future in enumerate(self.futures):
                if results[i] is None:
                    results[i] = future.result()
        except BrokenProcessPool:
            raise BatchError(
                "A tokenizer worker process died (killed, or out of memory?). The chunks finished so far "
                "are saved: rerun with --resume, perhaps with fewer --workers or a smaller --chunk-size"
            ) from None
        return results


class _Encoder:
    """Runs the pipeline's pure-Python encoding (tokenisation) in a process pool, or inline.

    A ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: if a worker dies, the
    waiting chunk fails with an error instead of waiting forever.
    """

    def __init__(self, encode, workers: int, pieces_per_worker: int = 4):
        self.encode = encode
        self.workers = workers
        self.pieces = max(1, workers * pieces_per_worker)
        self.pool = None
        if workers > 0:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            if method != "fork" and not _picklable(encode):
                log.warning("This pipeline's tokenizer cannot be sent to worker processes here; tokenizing in the main process")
                self.workers = 0
                return
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context(method),
                initializer=_init_worker,
                initargs=(encode, os.getpid()),
            )

    def submit(self, texts):
        """Start encoding ``texts``; returns a handle whose ``get()`` gives the results."""
        if self.pool is None or not texts:
            return _Immediate(_encode_texts, self.encode, texts)
        step = max(1, math.ceil(len(texts) / self.pieces))
        pieces = [texts[i: i + step] for i in range(0, len(texts), step)]
        return _Pending([self.pool.submit(_worker_encode, piece) for piece in pieces], pieces, self.encode)

    @staticmethod
    def collect(handle):
        """Join a handle's pieces: ``(results, {index: error})``."""
        results, errors = [], {}
        for part, part_errors in handle.get():
            for i, message in part_errors.items():
                errors[len(results) + i] = message
            results.extend(part)
        return results, errors

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None

    def terminate(self):
        if self.pool is not None:
            processes = list((getattr(self.pool, "_processes", None) or {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join(timeout=5)
            self.pool = None


def default_workers() -> int:
    """Tokenizer processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
