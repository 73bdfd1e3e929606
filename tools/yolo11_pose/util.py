"""Small helpers shared by the tools: user-facing errors, atomic writes, hashes."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: printed as one line `error: ...` and exit code 2 by the CLI."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def ensure_writable_dir(path: str | Path, flag: str = "--out") -> Path:
    """`flag` names the option that gave the folder, for the error message."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(f"output folder {p} is not writable ({e.strerror}); choose another {flag}") from None
    return p


@contextlib.contextmanager
def atomic_path(dest: str | Path):
    """Yield a temporary path next to ``dest``; rename it over ``dest`` only if the block succeeds."""
    dest = Path(dest)
    ensure_writable_dir(dest.parent)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a finished output gets the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def staging_dir(dest: str | Path):
    """A temporary sibling folder whose files are moved into ``dest`` (each by rename) when the block succeeds."""
    dest = ensure_writable_dir(dest)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".staging-"))
    try:
        yield tmp
        for f in sorted(tmp.iterdir()):
            os.replace(f, dest / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


LOCK_NAME = ".yolo11-pose.lock"


@contextlib.contextmanager
def out_lock(folder: str | Path, flag: str = "--out"):
    """Hold the output folder for this run: a second run into the same folder stops at once with one line (two
    builds into one folder would each report their file while the folder ends with the other's)."""
    d = Path(folder)
    if d.exists() and not d.is_dir():
        raise UserError(f"{flag} {d} is a file, not a folder; choose another {flag}")
    d = ensure_writable_dir(d, flag)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock = d / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise UserError(f"another yolo11-pose run{f' (pid {holder})' if holder else ''} is writing into {d}; wait "
                        f"for it to finish or choose another {flag}") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
