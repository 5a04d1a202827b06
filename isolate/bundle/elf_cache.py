"""ELF facts kept by content: a file whose sha256 was parsed before is not parsed again.

``ElfCache.read(path, sha256, data)`` returns what ``isolate.bundle.elf.read_elf`` would
(the same ``ElfFile``): from the entry ``<cache_root()>/elf/<parser>/<sha256>.json``
when there is a trusted one, else by parsing the file and storing the facts. ``parser``
is a sha256 of ``elf.FACTS_VERSION``, pyelftools' version and ``isolate/bundle/elf.py``
itself: a change to how facts are read starts an empty directory. A file that cannot be
parsed is never stored; it is parsed (and fails) every time.

Threat model. The facts decide the ELF checks (closure, RPATH, floors, host libraries),
so a forged entry for a file's sha256 could make a bad file pass them. An entry is
trusted only when it is a regular file (opened without following a symlink, relative to
an open directory), and the directory and the entry belong to the user running isolate
and nobody else can write them; ``cache_root()/elf`` and its subdirectories are created
0700, entries 0600. Any other entry is ignored and the file parsed (``ignored`` says
why). An entry also carries the sha256 of its facts: one whose facts do not match it
(a damaged disk, a write cut short, an edit by hand) is ignored too, the file parsed and
the entry written again. Someone who can write as that user can compute that checksum,
and can change isolate itself, so nothing stronger is claimed. The content sha256 is one
this run computed from the bytes it read, or one ``isolate.bundle.store`` computed while
placing the file (see ``isolate.bundle.elf_closure``), never one the bundle or its
manifest states.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import elftools

from isolate.bundle import elf
from isolate.bundle.elf import ElfFile, read_elf
from isolate.cache import cache_root, untrusted

SCHEMA = "isolate.elf-facts/2"  # /2: entries carry facts_sha256
_ENTRY_LIMIT = 1 << 20  # bytes; the facts of one file are a few KiB


def facts_sha256(facts: object) -> str:
    """The checksum an entry keeps of its facts (their JSON data, keys sorted)."""
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def parser_sha256() -> str:
    """What the facts depend on besides the file's bytes: the reader's code and version."""
    h = hashlib.sha256(f"{SCHEMA}\0{elf.FACTS_VERSION}\0{elftools.__version__}\0".encode())
    source = elf.__file__
    h.update(Path(source).read_bytes() if source else b"")
    return h.hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """How the facts of one run were found."""

    cached: int  # read from trusted entries
    parsed: int  # parsed now (and stored, when the cache could be written)
    ignored: str | None  # why an entry or the directory was not trusted (the first reason)


class ElfCache:
    """ELF facts by content sha256 under ``directory`` (default ``cache_root()/elf``).

    Safe to use from several threads at once."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else cache_root() / "elf"
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._fd: int | None = None  # the parser's directory, opened once
        self._opened = False
        self._cached = 0
        self._parsed = 0
        self._ignored: str | None = None

    @property
    def counts(self) -> Counts:
        with self._lock:
            return Counts(cached=self._cached, parsed=self._parsed, ignored=self._ignored)

    def add(self, counts: Counts) -> None:
        """Count facts found by another ``ElfCache`` over the same directory (a worker
        process's) as if found here."""
        with self._lock:
            self._cached += counts.cached
            self._parsed += counts.parsed
            self._ignored = self._ignored or counts.ignored

    def read(self, path: Path, sha256: str, data: bytes | None = None) -> ElfFile:
        """The facts of the ELF file at ``path`` whose content has ``sha256`` (``data``:
        that content, when already read); ``InputError`` as ``read_elf`` raises it."""
        facts = self.cached(path, sha256)
        return facts if facts is not None else self.parse(path, sha256, data)

    def cached(self, path: Path, sha256: str) -> ElfFile | None:
        """The facts stored for content ``sha256`` (of the file at ``path``), or None."""
        fd = self._directory()
        facts = self._load(fd, path, sha256) if fd is not None else None
        if facts is not None:
            with self._lock:
                self._cached += 1
        return facts

    def parse(self, path: Path, sha256: str, data: bytes | None = None) -> ElfFile:
        """Parse the facts of the ELF file at ``path`` whose content has ``sha256``
        (from ``data``, that content, when given) and store them."""
        facts = read_elf(path, data)
        with self._lock:
            self._parsed += 1
        fd = self._directory()
        if fd is not None:
            self._store(fd, sha256, facts)
        return facts

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ElfCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ignore(self, why: str) -> None:
        with self._lock:
            self._ignored = self._ignored or why

    def _directory(self) -> int | None:
        """The parser's directory, created if need be and trusted, opened once; None when
        it cannot be used (then every file is parsed)."""
        with self._lock:
            if self._opened:
                return self._fd
            self._opened = True
            where = self.directory / parser_sha256()[:32]
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                where.mkdir(mode=0o700, exist_ok=True)
                fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                self._ignored = f"{where} cannot be used: {exc.strerror or exc}"
                return None
            why = untrusted(os.fstat(fd), str(where), stat.S_IFDIR) or untrusted(
                os.lstat(self.directory), str(self.directory), stat.S_IFDIR)
            if why is not None:
                os.close(fd)
                self._ignored = why
                return None
            self._dir, self._fd = where, fd
            return fd

    def _load(self, dir_fd: int, path: Path, sha256: str) -> ElfFile | None:
        name = f"{sha256}.json"
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._ignore(f"{self._dir}/{name} cannot be read: {exc.strerror or exc}")
            return None
        try:
            why = untrusted(os.fstat(fd), f"{self._dir}/{name}", stat.S_IFREG)
            if why is not None:
                self._ignore(why)
                return None
            data = json.loads(os.read(fd, _ENTRY_LIMIT))
            if not isinstance(data, dict) or data.get("schema") != SCHEMA or \
                    data.get("sha256") != sha256:
                self._ignore(f"{self._dir}/{name} is not the facts of that content")
                return None
            if data.get("facts_sha256") != facts_sha256(data.get("facts")):
                self._ignore(f"{self._dir}/{name} does not match its checksum (damaged or "
                             "edited)")
                return None
            return ElfFile.from_facts(path, data["facts"])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self._ignore(f"{self._dir}/{name} cannot be read: {exc}")
            return None
        finally:
            os.close(fd)

    def _store(self, dir_fd: int, sha256: str, facts: ElfFile) -> None:
        """Keep ``facts`` (owner-only, through a rename); a cache that cannot be written is
        left alone. Not synced to disk: an entry a crash truncates does not parse, and is
        then ignored and written again."""
        data = facts.facts_dict()
        text = json.dumps({"schema": SCHEMA, "sha256": sha256, "facts": data,
                           "facts_sha256": facts_sha256(data)}, sort_keys=True)
        import tempfile  # only when an entry is written: verify starts sooner without it

        assert self._dir is not None
        try:
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=f".{sha256}.", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp: mode 0600
                f.write(text)
            os.replace(os.path.basename(tmp), f"{sha256}.json", src_dir_fd=dir_fd,
                       dst_dir_fd=dir_fd)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
