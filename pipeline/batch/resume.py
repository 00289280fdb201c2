"""What makes a batch job safe to kill and rerun: the output's lock, the resume manifest next to
the output (written atomically after every committed chunk), the identity of the model and the
inputs a manifest records, and the checks a rerun makes against them."""

from __future__ import annotations

import hashlib
import json
import logging
import os

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None

from ..errors import BatchError

log = logging.getLogger("ktp")

MANIFEST_SUFFIX = ".ktp-resume.json"
LOCK_SUFFIX = ".lock"
MANIFEST_VERSION = 1


def manifest_path(output: str) -> str:
    return output + MANIFEST_SUFFIX


class OutputLock:
    """An advisory lock (``flock``) on ``OUTPUT.lock``, held for a whole run, so two runs never
    write the same output (and its manifest) at once: the second fails fast with a BatchError.

    The kernel drops the lock when its process dies, so a killed run leaves no lock that
    blocks the next one (a stale ``.lock`` file is taken over). Where ``fcntl`` is missing
    (Windows) runs are not locked.

    Example:
        >>> with OutputLock("/tmp/ktp-doctest-out.jsonl"):  # doctest: +SKIP
        ...     pass
    """

    def __init__(self, output: str):
        self.output = output
        self.path = output + LOCK_SUFFIX
        self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def acquire(self) -> OutputLock:
        parent = os.path.dirname(os.path.abspath(self.output))
        if not os.path.isdir(parent):
            raise BatchError(f"The output's folder {parent} does not exist")
        if fcntl is None:
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise BatchError(f"Cannot create the lock file {self.path}: {err.strerror or err}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                raise BatchError(
                    f"Output {self.output} is being written by another run"
                    + (f" (process {holder})" if holder else "")
                    + f", which holds {self.path}; wait for it to finish, or choose another --output"
                ) from None
            # The run that held the lock may have removed the file just before we locked it:
            # then lock the file that is there now.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # still locked, so no other run is using this file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_pid(fd) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _write_json_atomic(path, data):
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def _input_identity(files) -> list:
    out = []
    for path in files:
        try:
            st = os.stat(path)
            out.append([os.path.abspath(path), st.st_size, int(st.st_mtime)])
        except OSError:
            out.append([os.path.abspath(path), None, None])
    return out


def _model_identity(pipeline, model_dir) -> str:
    if model_dir is not None:
        meta = os.path.join(model_dir, "metadata.json")
        try:
            with open(meta, "rb") as f:
                return os.path.abspath(model_dir) + ":" + hashlib.sha256(f.read()).hexdigest()[:16]
        except OSError:
            return os.path.abspath(model_dir)
    return hashlib.sha256(json.dumps(pipeline.get_config(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_output(output, manifest_file, resume, overwrite):
    """Decide how to treat an existing output; returns the manifest to resume from, or None.

    Called with the output's lock held, so no other run changes the two files meanwhile. A
    manifest with no chunk done (a run killed before its first commit) resumes as a fresh run,
    whether or not its output was created.
    """
    has_output = os.path.exists(output)
    has_manifest = os.path.exists(manifest_file)
    if os.path.isdir(output):
        raise BatchError(f"Output {output} is a folder; give a file path")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise BatchError(f"The output's folder {parent} does not exist")
    if resume:
        if has_manifest:
            try:
                with open(manifest_file, encoding="utf-8") as f:
                    state = json.load(f)
                if not isinstance(state, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as err:
                raise BatchError(f"Cannot resume: {manifest_file} is unreadable ({err}); rerun with --overwrite") from None
            if not state.get("chunks_done"):
                return state
            if not has_output:
                raise BatchError(f"Cannot resume: {manifest_file} exists but the output {output} is gone; rerun with --overwrite")
            if os.path.getsize(output) < state.get("bytes_done", 0):
                raise BatchError(f"Cannot resume: {output} is shorter than its manifest records; rerun with --overwrite")
            return state
        if has_output:
            raise BatchError(
                f"Cannot resume: {output} has no progress manifest ({os.path.basename(manifest_file)}), so it is "
                "either complete or not written by ktp predict; rerun with --overwrite to replace it"
            )
        return None
    if (has_output or has_manifest) and not overwrite:
        what = "an unfinished run (its manifest exists)" if has_manifest else "a file"
        raise BatchError(
            f"Output {output} already exists as {what}; pass --resume to continue an unfinished run "
            "or --overwrite to replace it"
        )
    # With overwrite, an old manifest stays until the new run replaces it (before it touches
    # the output), so a run killed in between leaves a state that still resumes.
    return None


def _check_manifest(state, fingerprint, settings, manifest_file):
    if state.get("version") != MANIFEST_VERSION:
        raise BatchError(f"Cannot resume: {manifest_file} has manifest version {state.get('version')!r}; rerun with --overwrite")
    if state.get("fingerprint") == fingerprint:
        return
    before = state.get("settings", {})
    changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
    raise BatchError(
        f"Cannot resume: these settings differ from the interrupted run's: {', '.join(changed) or 'unknown'}. "
        "Resume with the same model, inputs and options, or rerun with --overwrite"
    )


def _without_own_files(files, output, manifest_file):
    """Leave out the job's own output and manifest (an output written into an input folder)."""
    own = {os.path.abspath(p) for p in (output, manifest_file, manifest_file + ".tmp", output + LOCK_SUFFIX)}
    kept = [f for f in files if os.path.abspath(f) not in own]
    if len(kept) < len(files):
        log.info("Leaving the job's own output and manifest out of the inputs")
    if not kept:
        raise BatchError("No input files left once the output itself is left out")
    return kept
