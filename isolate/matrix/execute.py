"""Observe cells: run the runtime's test command in the bundle on a host.

Executors:

- ``local``: this machine with a local interpreter as the host's platform Python, in the
  hostile environment of ``isolate.hostile_env`` (PYTHONHOME, PYTHONPATH, PYTHONSTARTUP,
  a user site and the working directory with shadowing modules, ...), with that
  interpreter first on PATH, its standard library on PYTHONPATH and its libraries on
  LD_LIBRARY_PATH, in the C locale.
- ``rootfs``: a cached Debian root filesystem under bubblewrap: read-only root, private
  /tmp, no network, the bundle bound read-only below /opt/isolate, the same hostile
  environment.
- ``static``: not observed; the prediction stands alone.

Every cell runs the matrix's one copy of the bundle, in a directory whose path has a
space (``isolate.matrix.shared``); each has a fresh work directory of its own.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from isolate import hostile_env
from isolate.bundle import archive_format
from isolate.bundle.tar_stream import TarError, TarReader
from isolate.bundle.unpack import detect_format
from isolate.errors import InputError, IsolateError
from isolate.hostfacts import host_library
from isolate.matrix.plan import PlannedCell
from isolate.matrix.provision import rootfs_spec
from isolate.matrix.shared import SPACE_DIR, SharedCopy, make_shared_copy
from isolate.model.hostlibs import ObservedHostLibrary
from isolate.model.manifest import MANIFEST_NAME, Manifest, ManifestError
from isolate.model.results import Cell, Observation
from isolate.proc import Completed, Runner
from isolate.provision.rootfs import Bind, bwrap_argv, ensure_rootfs, missing_tools


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleInput:
    manifest: Manifest
    manifest_sha256: str
    archive: Path | None
    directory: Path | None
    overlay: Path | None  # archive or directory of the test overlay

    def info(self) -> dict[str, Any]:
        m = self.manifest
        return {"name": m.name, "runtime": m.runtime, "version": m.version,
                "python": m.interpreter.version, "platform": m.platform,
                "glibc_floor": m.elf.glibc_floor, "glibc_floor_file": m.elf.glibc_floor_file,
                "floors": {f.kind: f.to_dict() for f in m.elf.floors},
                "manifest_sha256": self.manifest_sha256,
                "test_command": list(m.test_command)}


def _xy(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _probe_file(cell_dir: Path) -> Path:
    dest = cell_dir / "probe.py"
    dest.write_text(importlib.resources.files("isolate.matrix").joinpath("probe.py")
                    .read_text(encoding="utf-8"))
    return dest


EXIT_CODE_NOTE = ("outcomes from the exit code only: isolate reads per-test outcomes from "
                  "unittest, pytest and stestr, or from the JUnit XML file a runtime profile names "
                  "([tests] junit)")
# What the dynamic loader (or the kernel) says when the runtime's interpreter cannot start.
_LOADER = re.compile(r"error while loading shared libraries|version `[^']+' not found|"
                     r"No such file or directory|cannot execute|Exec format error|"
                     r"Fatal Python error", re.IGNORECASE)


def start_failure(output: str, labels: Mapping[str, str]) -> str | None:
    """The line of ``output`` in which the loader says why the runtime did not start,
    with the bundle's path replaced by ``<bundle>``: the same on every host."""
    for line in output.splitlines():
        if _LOADER.search(line):
            for path, label in sorted(labels.items(), key=lambda kv: -len(kv[0])):
                line = line.replace(path, label)
            return line.strip()
    return None


def _observation(done: Completed | None, out: Path, timeout: float,
                 labels: Mapping[str, str] | None = None) -> Observation:
    tail = done.tail(60) if done is not None else ""
    seconds = done.seconds if done is not None else 0.0
    if done is not None and done.timed_out:
        return Observation(status="error", reason=f"timed out after {timeout:g} s",
                           output_tail=tail, seconds=seconds)
    if not out.exists():
        code = done.returncode if done is not None else None
        loader = start_failure(tail, labels or {})
        why = (f"the runtime did not start: {loader}" if loader else
               f"the runtime did not start or the test command crashed (exit code {code}); "
               "see the output")
        return Observation(status="error", output_tail=tail, seconds=seconds, reason=why)
    data = json.loads(out.read_text())
    tests: Mapping[str, str] = data.get("tests", {})
    kind = str(data.get("outcomes_from") or "")
    notes = (EXIT_CODE_NOTE,) if kind == "exit-code" else ()
    common: dict[str, Any] = {"tests": tests, "runtime": data["runtime"], "host": data["host"],
                              "seconds": seconds, "outcomes_from": kind, "notes": notes}
    if data.get("error"):  # no test ran: the runner's own message says why
        return Observation(status="error", reason=str(data["error"]), output_tail=tail, **common)
    if data.get("crash"):
        return Observation(status="error", reason="the test command raised an exception",
                           output_tail=data["crash"][-4000:], **common)
    bad = any(o in ("failed", "error") for o in tests.values())
    status = "failed" if bad or data.get("exit_code") not in (0, None) else "passed"
    reason: str | None = None
    if not tests and status == "passed":
        status, reason = "error", "the test command ran no test"
    return Observation(status=status, reason=reason, output_tail=tail if status != "passed" else "",
                       **common)


class CellRunner:
    """Observes cells of one bundle: each in a work directory of its own below ``work``,
    all with the one ``shared`` copy of the bundle and its test overlay (made in
    ``work`` by the first cell when not given)."""

    def __init__(self, *, runner: Runner, bundle: BundleInput, work: Path, timeout: float,
                 shared: SharedCopy | None = None):
        self._runner = runner
        self._bundle = bundle
        self._shared = shared
        self._shared_lock = threading.Lock()
        self._work = work
        self._timeout = timeout

    @property
    def shared(self) -> SharedCopy:
        with self._shared_lock:
            if self._shared is None:
                src = self._bundle.archive or self._bundle.directory
                assert src is not None
                self._shared = make_shared_copy(
                    src, self._bundle.overlay,
                    site_packages=self._bundle.manifest.interpreter.site_packages,
                    work=self._work)
            return self._shared

    def run(self, planned: PlannedCell) -> Cell:
        h = planned.host
        facts = {"distro": h.distro, "release": h.release, "arch": h.arch,
                 "libc": f"{h.libc.family} {h.libc.version}",
                 "python": h.python or "none", "provision": h.provision.method,
                 **{f"gcc_runtime.{k}": v for k, v in sorted(h.gcc_runtime.items())}}
        try:
            if planned.executor == "static":
                obs = Observation(status="not-run", reason="static host profile: it cannot be "
                                  "provisioned on this machine, so it is predicted only, "
                                  "not observed")
            elif planned.executor == "local":
                obs = self._local(planned)
            else:
                obs = self._rootfs(planned)
        except IsolateError as exc:
            obs = Observation(status="error", reason=exc.message,
                              output_tail=(exc.details or "")[-4000:])
        except Exception as exc:  # one broken cell must not lose the others' results
            obs = Observation(status="error", reason=f"isolate could not run this cell: "
                              f"{type(exc).__name__}: {exc}")
        return Cell(host=h.id, host_name=h.name, executor=planned.executor,
                    predicted=planned.prediction, observed=obs, host_facts=facts,
                    required=planned.required)

    # -- shared --------------------------------------------------------------------
    def _prepare(self, cell_id: str, *, private: bool = False
                 ) -> tuple[Path, Path, Path | None]:
        """A fresh work directory for one cell, the shared runtime and its overlay.

        ``private``: a copy of the shared runtime and overlay for this cell alone, for a
        local cell, which has no sandbox to keep the shared copy read-only while its
        test runner creates files (pytest's byte code of rewritten test modules, for
        one): its own directories, its files hard links to the shared ones
        (``SharedCopy.private_copy``). Root-filesystem cells bind the shared copy
        read-only.

        The test overlay is on the path of every process the runtime starts, as test
        requirements installed next to the app would be (the workers of stestr and
        pytest-xdist, and the tests' own ``sys.executable`` children import them too):
        the shared copy's ``.pth`` file does it, with a path relative to site-packages
        that a private copy of the whole layout keeps."""
        shared = self.shared
        cell_dir = self._work / cell_id
        cell_dir.mkdir(parents=True)
        if not private:
            return cell_dir, shared.top, shared.overlay
        top, overlay = shared.private_copy(cell_dir / "copy")
        return cell_dir, top, overlay

    def _command(self, python: str, probe: str, bundle: str, overlay: str | None,
                 out: str) -> list[str]:
        m = self._bundle.manifest
        junit = ["--junit", m.test_junit] if m.test_junit else []
        return [python, probe, "--bundle", bundle, "--overlay", overlay or "", "--out", out,
                *junit, "--", *m.test_command]

    # -- local ---------------------------------------------------------------------
    def _local(self, planned: PlannedCell) -> Observation:
        if not planned.host.provision.interpreter or not Path(
                planned.host.provision.interpreter).exists():
            return Observation(status="not-run", reason=(
                f"no CPython {planned.host.python} on this machine to stand in as the host's "
                "platform Python (install it, e.g. with pyenv, to observe this cell)"))
        host_python = Path(planned.host.provision.interpreter)
        cell_dir, top, overlay = self._prepare(planned.host.id, private=True)
        probe = _probe_file(cell_dir)
        out = cell_dir / "probe.json"
        env, cwd = self._hostile_env(cell_dir, host_python)
        argv = self._command(str(top / "bin" / "python3"), str(probe), str(top),
                             str(overlay) if overlay else None, str(out))
        done = self._runner.run(argv, env=env, cwd=cwd, timeout=self._timeout, check=False)
        obs = _observation(done, out, self._timeout, {str(top): "<bundle>"})
        return self._with_host_libraries(obs, Path("/"), lambda code: self._runner.run(
            [str(top / "bin" / "python3"), "-c", code], env=env, cwd=cwd, timeout=300,
            check=False))

    def _hostile_env(self, cell_dir: Path, host_python: Path) -> tuple[dict[str, str], Path]:
        """isolate.hostile_env's variables, with the host's Python behind them: first on
        PATH, its standard library on PYTHONPATH and its libraries on LD_LIBRARY_PATH;
        and the working directory with shadows."""
        prefix = host_python.parent.parent
        fakebin = cell_dir / "host-bin"
        fakebin.mkdir()
        for name in ("python", "python3"):
            (fakebin / name).symlink_to(host_python)
        versions = {_xy(self._bundle.manifest.interpreter.version)}
        if host_python.name.startswith("python") and "." in host_python.name:
            versions.add(host_python.name.removeprefix("python"))
        hostile = hostile_env.plant(cell_dir / "hostile", versions=versions)
        stdlib = [str(p) for p in sorted(prefix.glob("lib/python*"))]
        env = {
            **hostile.env,
            "PATH": f"{fakebin}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": ":".join([hostile.env["PYTHONPATH"], *stdlib]),
            "LD_LIBRARY_PATH": str(prefix / "lib"),
            "LC_ALL": "C",
            "LANG": "C",
            "TMPDIR": str(cell_dir),
        }
        env.update(self._bundle.manifest.test_env)
        return env, hostile.cwd

    # -- rootfs --------------------------------------------------------------------
    def _rootfs(self, planned: PlannedCell) -> Observation:
        problems = missing_tools()
        if problems:
            return Observation(status="not-run",
                               reason="cannot run root filesystems here: " + "; ".join(problems))
        spec = rootfs_spec(planned.host)
        assert spec is not None
        rootfs = ensure_rootfs(spec, runner=self._runner)
        base = "/opt/isolate"
        # the shared copy's layout, read-only: its overlay .pth names a relative path
        cell_dir, top, overlay = self._prepare(planned.host.id)
        probe = _probe_file(cell_dir)
        bundle_at = f"{base}/{SPACE_DIR}/{top.name}"
        binds = [Bind(source=top, dest=bundle_at),
                 Bind(source=cell_dir / "rw", dest=f"{base}/work", writable=True)]
        (cell_dir / "rw").mkdir()
        shutil.copy(probe, cell_dir / "rw" / "probe.py")
        hostile = hostile_env.plant(cell_dir / "rw" / "hostile", seen_as=f"{base}/work/hostile",
                                    versions=[_xy(self._bundle.manifest.interpreter.version)])
        if overlay is not None:
            binds.append(Bind(source=overlay, dest=f"{base}/{overlay.name}"))
        argv = self._command(f"{bundle_at}/bin/python3", f"{base}/work/probe.py", bundle_at,
                             f"{base}/{overlay.name}" if overlay else None,
                             f"{base}/work/probe.json")
        full = bwrap_argv(rootfs, argv, binds=binds,
                          env={**hostile.env, **self._bundle.manifest.test_env},
                          cwd=hostile.cwd_seen)
        done = self._runner.run(full, env={"PATH": "/usr/bin:/bin"}, timeout=self._timeout,
                                check=False)
        obs = _observation(done, cell_dir / "rw" / "probe.json", self._timeout,
                           {bundle_at: "<bundle>"})

        def smoke(code: str) -> Completed:
            argv = bwrap_argv(rootfs, [f"{bundle_at}/bin/python3", "-c", code], binds=binds,
                              env={**hostile.env, **self._bundle.manifest.test_env},
                              cwd=hostile.cwd_seen)
            return self._runner.run(argv, env={"PATH": "/usr/bin:/bin"}, timeout=300,
                                    check=False)

        return self._with_host_libraries(obs, rootfs, smoke)

    # -- host libraries ------------------------------------------------------------
    def _with_host_libraries(self, obs: Observation, root: Path,
                             smoke: Callable[[str], Completed]) -> Observation:
        """``obs`` with what the host has of each declared host library (read from its
        file system at ``root``) and the result of each one's smoke check, run with the
        runtime's interpreter on the host where the library resolved."""
        found = []
        for lib in self._bundle.manifest.elf.host_libraries:
            soname = str(lib.get("soname", ""))
            shipped = host_library(soname, root=root)
            file = None
            if shipped is not None:
                file = "/" + Path(shipped.source).relative_to(root).as_posix()
            code = str(lib.get("smoke") or "")
            status, output = "", ""
            if code and shipped is None:
                status = "not-run"
            elif code:
                done = smoke(code)
                status = "passed" if done.ok else "failed"
                output = "" if done.ok else done.tail(20)
            found.append(ObservedHostLibrary(
                soname=soname, file=file, version=shipped.version if shipped else None,
                smoke=status, smoke_output=output))
        return replace(obs, host_libraries=tuple(found))


_PEEK_MEMBERS = 1000  # the manifest is among an archive's first entries (they are sorted)
_PEEK_BYTES = 64 << 20  # a larger manifest is refused


def _peek_manifest(archive: Path) -> tuple[str, bytes]:
    """(the top directory's name, the manifest's bytes) of a bundle archive, read from
    the start of its stream without unpacking anything. The matrix unpacks the archive
    once, with every check, before its cells (``isolate.matrix.shared``)."""
    import gzip

    import zstandard

    fmt = detect_format(archive)
    bad = f"{archive} is not a bundle archive"
    try:
        with open(archive, "rb") as raw:
            stream: io.BufferedIOBase | zstandard.ZstdDecompressionReader = (
                zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
                if fmt == "tar.zst"
                else gzip.GzipFile(fileobj=raw, mode="rb"))
            with stream:
                reader = TarReader(stream, max_meta=1 << 20)
                count = 0
                while (entry := reader.next()) is not None and count < _PEEK_MEMBERS:
                    top, _, rest = entry.name.partition("/")
                    if rest == MANIFEST_NAME and entry.isreg():
                        if entry.size > _PEEK_BYTES:
                            raise InputError(f"{bad}: its {MANIFEST_NAME} is "
                                             f"{entry.size} bytes")
                        return top, reader.read(entry)
                    count += 1
    except (OSError, EOFError, TarError, zstandard.ZstdError) as exc:
        raise InputError(f"{bad}: {exc}",
                         hint="rebuild it with `isolate bundle`, or fetch it again") from exc
    raise InputError(f"{bad}: no {MANIFEST_NAME} among its first entries",
                     hint="rebuild it with `isolate bundle`")


def open_bundle(path: Path) -> BundleInput:
    """A bundle archive or directory, with its manifest and its test overlay (found next
    to it as ``<name>.tests`` or ``<name>.tests.<fmt>``)."""
    path = path.resolve()
    if not path.exists():
        raise InputError(f"bundle {path} does not exist", hint="build one with `isolate bundle`")
    if path.is_dir():
        mpath = path / MANIFEST_NAME
        if not mpath.exists():
            raise InputError(f"{path} is not a bundle: it has no {MANIFEST_NAME}")
        text = mpath.read_bytes()
        archive, directory, name = None, path, path.name
    else:
        name, text = _peek_manifest(path)
        archive, directory = path, None
    try:
        manifest = Manifest.loads(text)
    except ManifestError as exc:
        raise InputError(f"{path}: unreadable manifest: {exc}",
                         hint="rebuild the bundle with this isolate") from exc
    overlay = None
    tests = archive_format.overlay_name(name)
    for cand in (path.parent / tests, *(path.parent / archive_format.archive_name(tests, f)
                                        for f in archive_format.FORMATS)):
        if cand.exists():
            overlay = cand
            break
    return BundleInput(manifest=manifest, manifest_sha256=hashlib.sha256(text).hexdigest(),
                       archive=archive, directory=directory, overlay=overlay)
