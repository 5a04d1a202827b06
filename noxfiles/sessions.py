"""Sessions: tests, e2e, lint, lock, bundle."""

from __future__ import annotations

import nox

from noxfiles.common import CLEAN_ENV, CONTROLLER_PYTHONS, install

__all__ = ["bundle", "e2e", "lint", "lock", "main", "tests"]


@nox.session(python=CONTROLLER_PYTHONS)
def tests(session: nox.Session) -> None:
    """The toolkit's own suite, without the slow end-to-end tests."""
    install(session, "dev", "uv")
    session.run("pytest", "-m", "not slow", "-n", "2", *session.posargs)


@nox.session(python="3.11")
def e2e(session: nox.Session) -> None:
    """End-to-end: the real Nova runtime, built, moved, run in Debian root filesystems."""
    install(session, "dev", "uv")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    install(session, "dev")
    session.run("ruff", "check", "isolate", "noxfiles", "tests", "noxfile.py")
    session.run("mypy")


@nox.session(python="3.11")
def lock(session: nox.Session) -> None:
    """Relock the built-in runtimes; ``nox -s lock -- --check`` checks them."""
    install(session)
    for name in ("nova",):
        session.run("isolate", "lock", name, *session.posargs, env=CLEAN_ENV)


@nox.session(python="3.11")
def bundle(session: nox.Session) -> None:
    """Build the Nova runtime into ./out (``-- --format dir,tar.zst`` to change)."""
    install(session)
    session.run("isolate", "bundle", "nova", "-o", "out", *session.posargs, env=CLEAN_ENV)


@nox.session(python="3.11")
def main(session: nox.Session) -> None:
    """The main job: check the Nova lock, build the Nova runtime and verify it."""
    install(session)
    session.run("isolate", "lock", "nova", "--check", env=CLEAN_ENV)
    session.run("isolate", "bundle", "nova", "-o", "out", "--format", "dir,tar.zst",
                env=CLEAN_ENV)
