"""Write files and publish directories atomically: never a half-written output."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from isolate.errors import EnvironmentProblem, InputError


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def ensure_writable_dir(path: Path, *, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create {what} {path}: {exc.strerror}",
            hint="choose a directory you can write to",
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path} is not writable", hint="choose a directory you can write to")


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Write ``path`` through a temporary file in the same directory and a rename."""
    ensure_writable_dir(path.parent, what="output directory")
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror or exc}",
                                 hint="check free space and permissions there") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def temp_dir(parent: Path | None = None, prefix: str = "isolate-") -> Iterator[Path]:
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
