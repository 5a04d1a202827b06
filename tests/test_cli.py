"""The `isolate` command itself: usage errors, exit codes, --version, and importability."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

import isolate
from isolate.cli import profiles_cmd
from isolate.errors import EnvironmentProblem
from isolate.proc import Runner
from tests.conftest import index, invoke

APP = 'name = "app"\npython = "3.12"\nrequirements = ["alpha"]\n'


def _modules() -> list[str]:
    names = [
        m.name for m in pkgutil.walk_packages(isolate.__path__, prefix="isolate.")
        if m.name != "isolate.__main__"  # runs the CLI on import; see test_python_m_isolate
    ]
    return sorted(names)


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports(module):
    importlib.import_module(module)


def test_the_module_list_is_complete():
    found = set(_modules())
    assert {"isolate.cli", "isolate.cli.lock_cmd", "isolate.cli.profiles_cmd",
            "isolate.errors", "isolate.profiles", "isolate.locking.lock",
            "isolate.model.lock", "isolate.model.profiles"} <= found


def test_python_m_isolate_version(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([sys.executable, "-m", "isolate", "--version"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"isolate {isolate.__version__}"


def test_python_m_isolate_usage_error_exit_code(tmp_path):
    done = subprocess.run([sys.executable, "-m", "isolate", "frobnicate"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "invalid choice: 'frobnicate'" in done.stderr
    assert "Traceback" not in done.stderr


def test_version(run_isolate):
    r = run_isolate("--version")
    assert r.code == 0
    assert r.out.strip() == f"isolate {isolate.__version__}"


def test_help_documents_the_exit_codes(run_isolate):
    r = run_isolate("--help")
    assert r.code == 0
    assert "exit codes: 0 ok, 1 check failed, 2 usage or input error" in r.out
    for command in ("profiles", "lock"):
        assert command in r.out


def test_no_command(run_isolate):
    r = run_isolate()
    assert r.code == 2
    assert r.err.startswith("usage: isolate")
    assert "error: the following arguments are required: COMMAND" in r.err


def test_unknown_command(run_isolate):
    r = run_isolate("bundel")
    assert r.code == 2
    assert "invalid choice: 'bundel'" in r.err


def test_unknown_option(run_isolate):
    r = run_isolate("profiles", "--jsn")
    assert r.code == 2
    assert "unrecognized arguments: --jsn" in r.err


def test_lock_needs_a_runtime(run_isolate):
    r = run_isolate("lock")
    assert r.code == 2
    assert "usage: isolate lock" in r.err
    assert "the following arguments are required: runtime" in r.err


def test_lock_unknown_backend(run_isolate):
    r = run_isolate("lock", "nova", "--backend", "conda")
    assert r.code == 2
    assert "invalid choice: 'conda'" in r.err


def test_profiles_show_needs_an_id(run_isolate, tmp_path):
    r = run_isolate("profiles", "show", cwd=tmp_path)
    assert r.code == 2
    assert "error: `isolate profiles show` needs a profile id" in r.err
    assert "hint: `isolate profiles` lists them" in r.err


def test_check_cannot_be_combined_with_upgrade(run_isolate, workspace):
    (workspace / "profiles" / "runtimes" / "app.toml").write_text(APP)
    for extra in (["--upgrade"], ["--upgrade-package", "alpha"]):
        r = run_isolate("--root", workspace, "lock", "app", "--check", *extra)
        assert r.code == 2, r.output
        assert "--check cannot be combined with --upgrade or --upgrade-package" in r.err


def test_no_resolve_needs_check(run_isolate, workspace):
    (workspace / "profiles" / "runtimes" / "app.toml").write_text(APP)
    r = run_isolate("--root", workspace, "lock", "app", "--no-resolve")
    assert r.code == 2
    assert "--no-resolve only makes sense with --check" in r.err


def test_root_that_does_not_exist(run_isolate, tmp_path):
    missing = tmp_path / "nowhere"
    r = run_isolate("--root", missing, "profiles")
    assert r.code == 2
    assert f"--root {missing}: no such directory" in r.err


def test_workspace_is_found_upward(run_isolate, workspace):
    (workspace / "profiles" / "runtimes" / "app.toml").write_text(APP)
    deep = workspace / "a" / "b"
    deep.mkdir(parents=True)
    r = run_isolate("profiles", "show", "app", cwd=deep)
    assert r.code == 0, r.output
    assert '"name": "app"' in r.out


def test_errors_end_with_a_hint(run_isolate, tmp_path):
    r = run_isolate("lock", "no-such-runtime", cwd=tmp_path)
    assert r.code == 2
    lines = r.err.rstrip().splitlines()
    assert lines[0] == "error: unknown runtime profile 'no-such-runtime'"
    assert lines[-1].startswith("hint: ")


def test_interrupt_exits_130(run_isolate, monkeypatch, tmp_path):
    def interrupted(app, args):
        raise KeyboardInterrupt

    monkeypatch.setattr(profiles_cmd, "run", interrupted)
    r = run_isolate("profiles", cwd=tmp_path)
    assert r.code == 130
    assert r.err == "interrupted\n"



class _Recording(Runner):
    """Runs every command as isolate would, and keeps their argv."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[list[str]] = []

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def, override]
        self.commands.append([os.fspath(a) for a in argv])
        return super().run(argv, **kwargs)


class _NoTools(Runner):
    """A machine where every command isolate starts is missing."""

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def, override]
        raise EnvironmentProblem(f"{os.fspath(argv[0])}: not installed (test runner)",
                                 hint="install it")


def test_the_cli_takes_a_runner(app_ws, app_wheels):
    """The Runner seam: a CLI test sees every command a command runs, or makes them fail."""
    rec = _Recording()
    r = invoke(["--root", app_ws, "lock", "app", "--check", *index(app_wheels)], runner=rec)
    assert r.code == 0, r.output
    assert any("compile" in " ".join(c) for c in rec.commands), rec.commands
    r = invoke(["--root", app_ws, "lock", "app", "--check", *index(app_wheels)],
               runner=_NoTools())
    assert r.code == 3, r.output
    assert "not installed (test runner)" in r.output
