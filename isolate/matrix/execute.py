"""Observe cells: run the runtime's test command in the bundle on a host.

Executors:

- ``local``: this machine with a local interpreter as the host's platform Python, in the
  hostile environment of ``isolate.hostile_env`` (PYTHONHOME, PYTHONPATH, PYTHONSTARTUP,
  a user site and the working directory with shadowing modules, ...), with that
  interpreter first on PATH, its standard library on PYTHONPATH and its libraries on
  LD_LIBRARY_PATH, in the C locale. Each cell unpacks the bundle into a fresh directory
  whose path has a space.
- ``rootfs``: a cached Debian root filesystem under bubblewrap: read-only root, private
  /tmp, no network, the bundle bound below /opt/isolate, the same hostile environment.
- ``static``: not observed; the prediction stands alone.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from isolate import hostile_env
from isolate.bundle.unpack import unpack
from isolate.errors import IsolateError
from isolate.hostfacts import host_library
from isolate.matrix.plan import PlannedCell
from isolate.model.hostlibs import ObservedHostLibrary
from isolate.model.manifest import MANIFEST_NAME, Manifest, ManifestError
from isolate.model.results import Cell, Observation
from isolate.proc import Completed, Runner
from isolate.provision.rootfs import Bind, RootfsSpec, bwrap_argv, ensure_rootfs, missing_tools

SPACE_DIR = "bundle root with space"
OVERLAY_PTH = "isolate-test-overlay.pth"  # in a cell's copy of the runtime only


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


def _place(src: Path, dest_parent: Path) -> Path:
    """Unpack an archive (or copy a directory) into ``dest_parent``; return the top dir."""
    dest_parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        top = dest_parent / src.name
        shutil.copytree(src, top, symlinks=True)
        return top
    return unpack(src, dest_parent)


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
    def __init__(self, *, runner: Runner, bundle: BundleInput, work: Path, timeout: float):
        self._runner = runner
        self._bundle = bundle
        self._work = work
        self._timeout = timeout

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
    def _prepare(self, cell_id: str, overlay_at: str | None = None) -> tuple[
            Path, Path, Path | None]:
        """Unpack the bundle and its test overlay for one cell. ``overlay_at``: where the
        runtime sees the overlay (default: where it is unpacked)."""
        cell_dir = self._work / cell_id
        cell_dir.mkdir(parents=True)
        src = self._bundle.archive or self._bundle.directory
        assert src is not None
        top = _place(src, cell_dir / SPACE_DIR)
        overlay = None
        if self._bundle.overlay is not None:
            overlay = _place(self._bundle.overlay, cell_dir / "overlay")
            self._add_overlay(top, overlay_at or str(overlay))
        return cell_dir, top, overlay

    def _add_overlay(self, top: Path, overlay_at: str) -> None:
        """Put the test overlay on the path of every process this cell's copy of the
        runtime starts, as test requirements installed next to the app would be: the
        workers of stestr and pytest-xdist, and the tests' own ``sys.executable``
        children, import them too. A ``.pth`` file in the copy's site-packages does it
        (the launchers' ``-I`` leaves site-packages ``.pth`` files working)."""
        site_packages = top / self._bundle.manifest.interpreter.site_packages
        (site_packages / OVERLAY_PTH).write_text(f"{overlay_at}/site-packages\n")

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
        cell_dir, top, overlay = self._prepare(planned.host.id)
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
        p = planned.host.provision
        rootfs = ensure_rootfs(RootfsSpec(suite=p.suite or "", variant=p.variant,
                                          packages=p.packages, mirror=p.mirror),
                               runner=self._runner)
        base = "/opt/isolate"
        cell_dir, top, overlay = self._prepare(planned.host.id, f"{base}/overlay")
        probe = _probe_file(cell_dir)
        bundle_at = f"{base}/{SPACE_DIR}/{top.name}"
        binds = [Bind(source=top, dest=bundle_at),
                 Bind(source=cell_dir / "rw", dest=f"{base}/work", writable=True)]
        (cell_dir / "rw").mkdir()
        shutil.copy(probe, cell_dir / "rw" / "probe.py")
        hostile = hostile_env.plant(cell_dir / "rw" / "hostile", seen_as=f"{base}/work/hostile",
                                    versions=[_xy(self._bundle.manifest.interpreter.version)])
        if overlay is not None:
            binds.append(Bind(source=overlay, dest=f"{base}/overlay"))
        argv = self._command(f"{bundle_at}/bin/python3", f"{base}/work/probe.py", bundle_at,
                             f"{base}/overlay" if overlay else None, f"{base}/work/probe.json")
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


def open_bundle(path: Path) -> BundleInput:
    """A bundle archive or directory, with its manifest and its test overlay (found next
    to it as ``<name>.tests`` or ``<name>.tests.<fmt>``)."""
    from isolate.errors import InputError

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
        import tempfile

        with tempfile.TemporaryDirectory(prefix="isolate-peek-") as tmp:
            top = unpack(path, Path(tmp))
            mpath = top / MANIFEST_NAME
            if not mpath.exists():
                raise InputError(f"{path} is not a bundle archive: no {MANIFEST_NAME} inside")
            text = mpath.read_bytes()
            name = top.name
        archive, directory = path, None
    try:
        manifest = Manifest.loads(text)
    except ManifestError as exc:
        raise InputError(f"{path}: unreadable manifest: {exc}",
                         hint="rebuild the bundle with this isolate") from exc
    overlay = None
    for cand in (path.parent / f"{name}.tests", *(path.parent / f"{name}.tests.{f}"
                                                  for f in ("tar.zst", "tar.gz"))):
        if cand.exists():
            overlay = cand
            break
    return BundleInput(manifest=manifest, manifest_sha256=hashlib.sha256(text).hexdigest(),
                       archive=archive, directory=directory, overlay=overlay)
