"""nox sessions for a project that builds its runtime with isolate.

In the project's ``noxfile.py``::

    import isolate.nox

    isolate.nox.register(runtime="nova", hosts=["local-3.12", "debian-12"])

defines the sessions

- ``lock``: ``isolate lock RUNTIME`` (``nox -s lock -- --check`` in CI);
- ``bundle``: ``isolate bundle RUNTIME -o OUT``;
- ``matrix(host='ID')``, one per host: ``isolate matrix`` on the newest bundle archive in
  OUT, writing ``RESULTS/ID.json`` (a failed cell is the report's verdict, not the
  session's: the results are always written);
- ``report``: ``isolate report`` over every ``RESULTS/*.json`` (HTML, Markdown, JUnit), the
  judge of the run.

Arguments after ``--`` go to the isolate command (``nox -s bundle -- --offline ...``). The
sessions run inside nox and start isolate with ``session.run``; nothing here prints.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import nox

from isolate.bundle import archive_format

ARCHIVE_SUFFIXES = tuple(f".{fmt}" for fmt in archive_format.FORMATS)
OVERLAY_SUFFIXES = tuple(f"{archive_format.OVERLAY_SUFFIX}.{fmt}"
                         for fmt in archive_format.FORMATS)
LATEST = archive_format.LATEST  # written by `isolate bundle`: the bundle it made last


def register(*, runtime: str, hosts: Sequence[str], root: str | Path = ".",
             output: str | Path = "out", results: str | Path = "results",
             formats: str = "tar.zst", install: Sequence[str] | None = ("isolate-runtime",),
             python: str | None = None) -> None:
    """Define the sessions ``lock``, ``bundle``, ``matrix(host=...)`` and ``report`` in the
    calling noxfile.

    ``root``: the isolate workspace (with ``profiles/``), relative to the noxfile.
    ``install``: what each session installs into its virtualenv to get isolate; None runs
    the isolate nox itself runs under, with no virtualenv (``python=False``).
    ``python``: the sessions' interpreter (default: the one running nox).
    """
    if not hosts:
        raise ValueError("isolate.nox.register: hosts must name at least one host profile")
    host_ids = list(dict.fromkeys(hosts))
    session_python: str | bool | None = False if install is None else python
    base = [str(root)]

    def run_isolate(session: nox.Session, *args: str, success_codes: list[int] | None = None
                    ) -> None:
        command = [sys.executable, "-m", "isolate"] if install is None else ["isolate"]
        session.run(*command, "--root", *base, *args, external=install is None,
                    success_codes=success_codes)

    def setup(session: nox.Session) -> None:
        if install is not None:
            session.install(*install)

    @nox.session(name="lock", python=session_python)
    def lock(session: nox.Session) -> None:
        """Lock the runtime (`-- --check`: fail if the committed lock is stale)."""
        setup(session)
        run_isolate(session, "lock", runtime, *session.posargs)

    @nox.session(name="bundle", python=session_python)
    def bundle(session: nox.Session) -> None:
        """Build the runtime from its lock."""
        setup(session)
        run_isolate(session, "bundle", runtime, "-o", str(output), "--format", formats,
                    *session.posargs)

    @nox.session(name="matrix", python=session_python)
    @nox.parametrize("host", host_ids)
    def matrix(session: nox.Session, host: str) -> None:
        """Run the runtime's tests in the newest bundle archive on one host profile."""
        setup(session)
        extra = list(session.posargs)
        if extra and not extra[0].startswith("-"):
            archive = extra.pop(0)  # nox -s "matrix(host='x')" -- ARCHIVE [options]
        else:
            archive = str(newest_archive(Path(output)))
        Path(results).mkdir(parents=True, exist_ok=True)
        run_isolate(session, "matrix", archive, "--hosts", host,
                    "-o", str(Path(results) / f"{host}.json"), *extra, success_codes=[0, 1])

    @nox.session(name="report", python=session_python)
    def report(session: nox.Session) -> None:
        """Judge the matrix results: HTML, Markdown (for a CI summary) and JUnit XML."""
        setup(session)
        found = sorted(str(p) for p in Path(results).glob("*.json"))
        if not found:
            session.error(f"no results in {results}/: run the matrix sessions first")
        out = Path(results)
        run_isolate(session, "report", *found, "--html", str(out / "report.html"),
                    "--markdown", str(out / "report.md"), "--junit", str(out / "junit.xml"),
                    *session.posargs)

    del lock, bundle, matrix, report  # registered with nox by the decorators


def newest_archive(output: Path) -> Path:
    """The archive of the bundle that ``bundle`` made last in ``output``: the one
    ``latest.txt`` names, never the tests overlay beside it (``NAME.tests.tar.zst``)."""
    latest = output / LATEST
    if latest.is_file():
        name = latest.read_text(encoding="utf-8").strip()
        for fmt in archive_format.FORMATS:
            path = output / archive_format.archive_name(name, fmt)
            if path.is_file():
                return path
        raise FileNotFoundError(f"{latest} names {name}, but {output}/ has no archive of it: "
                                "run `nox -s bundle` with an archive format")
    archives = [p for p in output.glob("*")
                if p.name.endswith(ARCHIVE_SUFFIXES) and not p.name.endswith(OVERLAY_SUFFIXES)]
    if not archives:
        raise FileNotFoundError(f"no bundle archive in {output}/: run `nox -s bundle` first")
    return max(archives, key=lambda p: (p.stat().st_mtime, p.name))
