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


def remove_tree(path: Path) -> None:
    """Remove the directory tree at ``path`` as far as it can, errors ignored, as
    ``shutil.rmtree`` does, and also when it is deeper than Python's recursion limit
    (``rmtree`` recurses once per level; a tree from an archive can have thousands)."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        _remove_deep(os.fspath(path))


def _remove_deep(path: str) -> None:
    if os.path.islink(path) or not os.path.isdir(path):
        return
    stack, dirs = [path], []
    while stack:
        top = stack.pop()
        dirs.append(top)  # (after every directory above it)
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
        except OSError:
            continue
    for d in reversed(dirs):  # the deepest first
        with contextlib.suppress(OSError):
            os.rmdir(d)


@contextlib.contextmanager
def temp_dir(parent: Path | None = None, prefix: str = "isolate-") -> Iterator[Path]:
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
