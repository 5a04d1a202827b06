"""`isolate lock`: hashed locks from a local wheelhouse, `--check`, and failures.

Every lock here resolves offline (``--no-index --find-links``) against the wheels that
conftest builds. The default backend is uv (a dependency of isolate); the pip-tools tool
environment lives in the test cache and is built once (that one step needs PyPI).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Result, build_wheel, invoke

from isolate.errors import EnvironmentProblem
from isolate.interpreters import Discovery
from isolate.locking.backends import PipTools
from isolate.locking.lock import canonical_block
from isolate.model.lock import parse_lock
from isolate.proc import Runner

APP = """\
name = "app"
python = "{python}"
requirements = ["alpha", "marked"]

[tests]
requirements = ["gamma"]
"""

_PIN_LINE = re.compile(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$")


def minor(text: str) -> tuple[int, int]:
    a, b = text.split(".")
    return int(a), int(b)


def index_args(*wheelhouses: Path) -> list[str]:
    args = ["--no-index"]
    for w in wheelhouses:
        args += ["--find-links", str(w)]
    return args


def pins(path: Path) -> dict[str, str]:
    return {p.name: p.version for p in parse_lock(path.read_text()).pins}


def write_app(ws: Path, python: str, text: str = APP) -> Path:
    path = ws / "profiles" / "runtimes" / "app.toml"
    path.write_text(text.format(python=python))
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="session")
def tool_env(target_python: str, test_cache_dir: Path) -> Path:
    """The pip-tools tool environment for the target Python, built once into the test cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ISOLATE_CACHE_DIR", str(test_cache_dir))
        runner = Runner()
        try:
            return PipTools(runner, Discovery(runner)).tool_python(minor(target_python))
        except EnvironmentProblem as exc:
            pytest.skip(f"cannot build the pip-tools tool environment (needs PyPI once): "
                        f"{exc.message}")


@pytest.fixture(scope="module")
def locked_template(tmp_path_factory, wheelhouse, target_python, tool_env,
                    test_cache_dir) -> tuple[Path, Result]:
    """A workspace with the app profile, locked once per module by the real CLI.

    pip's own variables point at places that do not exist: isolate must ignore them.
    """
    ws = tmp_path_factory.mktemp("locked") / "ws"
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "constraints").mkdir()
    write_app(ws, target_python)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIP_FIND_LINKS", str(ws / "no-such-dir"))
        mp.setenv("PIP_CONSTRAINT", str(ws / "no-such-file.txt"))
        mp.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        mp.setenv("ISOLATE_CACHE_DIR", str(test_cache_dir))
        result = invoke(["--root", ws, "lock", "app", *index_args(wheelhouse)])
    assert result.code == 0, result.output
    return ws, result


@pytest.fixture
def locked(locked_template, tmp_path) -> Path:
    """A private copy of the locked workspace."""
    ws = tmp_path / "ws"
    shutil.copytree(locked_template[0], ws)
    return ws


# -- what a lock looks like ------------------------------------------------------------


def test_lock_writes_runtime_and_tests_locks(locked_template, tool_env, test_cache_dir):
    ws, result = locked_template
    constraints = ws / "constraints"
    assert sorted(p.name for p in constraints.iterdir()) == ["app-tests.txt", "app.txt"]
    assert f"wrote {constraints / 'app.txt'} (4 pins)" in result.out
    assert f"wrote {constraints / 'app-tests.txt'} (2 pins for the tests)" in result.out
    assert "+alpha==1.1" in result.out  # the change against the (absent) previous lock
    assert tool_env.is_relative_to(test_cache_dir / "tools")


def test_every_pin_has_the_hash_of_its_wheel(locked_template, wheelhouse):
    ws, _ = locked_template
    for name in ("app.txt", "app-tests.txt"):
        lock = parse_lock((ws / "constraints" / name).read_text())
        assert lock.pins
        for pin in lock.pins:
            wheel = wheelhouse / f"{pin.name}-{pin.version}-py3-none-any.whl"
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            assert pin.hashes == (f"sha256:{digest}",), pin.text
        # every requirement line is a pin followed by its hashes
        for line in (ws / "constraints" / name).read_text().splitlines():
            if line and not line.startswith((" ", "#")):
                assert _PIN_LINE.match(line), line


def test_header_names_profile_sha256_and_python(locked_template, target_python):
    ws, _ = locked_template
    profile_sha = hashlib.sha256((ws / "profiles/runtimes/app.toml").read_bytes()).hexdigest()
    for name, kind in (("app.txt", "runtime"), ("app-tests.txt", "tests")):
        text = (ws / "constraints" / name).read_text()
        header = text.split("\n#\n", 1)[0]
        assert f"# Lock of isolate runtime profile 'app' ({kind})." in header
        assert f"# Profile: profiles/runtimes/app.toml (sha256 {profile_sha})" in header
        assert f"# Resolved for CPython {target_python} on linux x86_64" in header
        assert "by uv " in header  # the default backend
        assert "--require-hashes" in header
        lock = parse_lock(text)
        assert lock.inputs is not None
        assert (lock.inputs.profile, lock.inputs.kind, lock.inputs.python) == (
            "app", kind, target_python)


def test_test_only_requirements_land_only_in_the_tests_lock(locked_template):
    ws, _ = locked_template
    runtime = pins(ws / "constraints" / "app.txt")
    tests = pins(ws / "constraints" / "app-tests.txt")
    assert tests == {"gamma": "1.0", "delta": "1.0"}
    assert {"alpha": "1.1", "beta": "2.0", "marked": "1.0"}.items() <= runtime.items()
    assert not set(runtime) & set(tests)


def test_markers_are_evaluated_for_the_profile_python(locked_template, target_python):
    ws, _ = locked_template
    runtime = pins(ws / "constraints" / "app.txt")
    if minor(target_python) >= (3, 12):
        assert "newpy" in runtime and "oldpy" not in runtime
    else:
        assert "oldpy" in runtime and "newpy" not in runtime


def test_locks_install_with_require_hashes(locked_template, wheelhouse, target_python, tmp_path):
    ws, _ = locked_template
    interp = Discovery(Runner()).find(minor(target_python), purpose="for the test venv")
    venv = tmp_path / "venv"
    subprocess.run([interp.path, "-m", "venv", "--without-pip", venv], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
           "--disable-pip-version-check"]
    src = ["--no-index", "--find-links", str(wheelhouse)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*pip, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    # the runtime lock alone is complete: pip checks every dependency is pinned and hashed
    run("install", "--require-hashes", *src, "-r", str(ws / "constraints" / "app.txt"))
    run("install", "--require-hashes", "--no-deps", *src,
        "-r", str(ws / "constraints" / "app-tests.txt"))
    run("check")
    done = subprocess.run(
        [venv / "bin" / "python", "-c", "import alpha, beta, gamma; print(alpha.__version__,"
         " beta.__version__, gamma.__version__)"],
        capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1.1", "2.0", "1.0"]


def test_runtime_and_tests_are_resolved_together(run_isolate, workspace, wheelhouse,
                                                 target_python, tool_env):
    # alone, the runtime would get beta 2.0; the tests need beta<2, and both locks must agree
    text = APP.replace('["alpha", "marked"]', '["alpha"]').replace('["gamma"]', '["beta<2"]')
    write_app(workspace, target_python, text)
    r = run_isolate("--root", workspace, "lock", "app", *index_args(wheelhouse))
    assert r.code == 0, r.output
    runtime = pins(workspace / "constraints" / "app.txt")
    tests = pins(workspace / "constraints" / "app-tests.txt")
    assert runtime == {"alpha": "1.1", "beta": "1.0"}
    assert tests == {}


# -- --check ------------------------------------------------------------------------------


def test_check_fresh_lock_exits_0(run_isolate, locked, wheelhouse):
    r = run_isolate("--root", locked, "lock", "app", "--check", *index_args(wheelhouse))
    assert r.code == 0, r.output
    assert "app.txt: fresh (header and a fresh resolution match the profile: uv " in r.out
    # what the check proved: 4 runtime pins and 2 test pins, hashes included
    assert "seeded with the committed versions, gives the same 6 pins with the same hashes" \
        in r.out


def test_check_with_pip_tools_accepts_the_lock_uv_made(run_isolate, locked, wheelhouse, tool_env):
    # the check compares pins and hash sets, not the resolver's annotations
    r = run_isolate("--root", locked, "lock", "app", "--check", "--backend", "pip-tools",
                    *index_args(wheelhouse))
    assert r.code == 0, r.output
    assert "fresh (header and a fresh resolution match the profile: pip-tools " in r.out


def test_check_no_resolve_fresh_lock_exits_0(run_isolate, locked):
    # no index options at all: the header comparison needs no packages
    r = run_isolate("--root", locked, "lock", "app", "--check", "--no-resolve")
    assert r.code == 0, r.output
    assert "fresh (header match the profile)" in r.out


@pytest.mark.parametrize("no_resolve", [False, True])
def test_check_after_a_requirement_was_added(run_isolate, locked, wheelhouse, target_python,
                                             no_resolve):
    write_app(locked, target_python, APP.replace('"marked"]', '"marked", "delta"]'))
    extra = ["--no-resolve"] if no_resolve else index_args(wheelhouse)
    r = run_isolate("--root", locked, "lock", "app", "--check", *extra)
    assert r.code == 1, r.output
    assert "error: the lock of 'app' is stale" in r.err
    assert "the profile changed since the lock was made" in r.err
    assert "requirements: added delta" in r.err
    assert "hint: run `isolate lock app` and commit the result" in r.err


def test_check_after_a_test_requirement_was_removed(run_isolate, locked, target_python):
    write_app(locked, target_python, APP.replace('["gamma"]', "[]"))
    r = run_isolate("--root", locked, "lock", "app", "--check", "--no-resolve")
    assert r.code == 1, r.output
    assert "test_requirements: removed gamma" in r.err


def test_check_after_the_python_version_changed(run_isolate, locked, target_python):
    other = "3.10" if target_python != "3.10" else "3.11"
    write_app(locked, other)
    r = run_isolate("--root", locked, "lock", "app", "--check")
    assert r.code == 1, r.output
    assert f"python: {target_python} -> {other}" in r.err


def test_check_ignores_comment_only_profile_edits(run_isolate, locked):
    profile = locked / "profiles" / "runtimes" / "app.toml"
    profile.write_text("# a comment\n" + profile.read_text())
    r = run_isolate("--root", locked, "lock", "app", "--check", "--no-resolve")
    assert r.code == 0, r.output


@pytest.mark.parametrize("edit", ["version-and-hashes", "version", "hash"])
def test_check_finds_a_hand_edited_pin(run_isolate, locked, wheelhouse, edit):
    lock = locked / "constraints" / "app.txt"
    text = lock.read_text()
    if edit == "version-and-hashes":  # a new version, its hash lines deleted
        text = re.sub(r"alpha==1\.1 \\\n    --hash=\S+\n", "alpha==1.0\n", text)
        assert "alpha==1.0\n" in text
    elif edit == "version":  # a new version, the old hash left in place
        text = text.replace("alpha==1.1 \\", "alpha==1.0 \\")
    else:
        m = re.search(r"beta==2\.0 \\\n    --hash=sha256:([0-9a-f]+)", text)
        assert m
        digest = m.group(1)
        text = text.replace(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1"))
    lock.write_text(text)
    # the header still matches the profile...
    r = run_isolate("--root", locked, "lock", "app", "--check", "--no-resolve")
    assert r.code == 0, r.output
    # ...but a fresh resolution does not give those pins
    r = run_isolate("--root", locked, "lock", "app", "--check", *index_args(wheelhouse))
    assert r.code == 1, r.output
    assert "a fresh resolution of the profile by uv " in r.err
    assert "gives other pins" in r.err
    assert ("beta==2.0" if edit == "hash" else "alpha==1.0") in r.err
    assert "hint: run `isolate lock app`" in r.err


def test_check_finds_a_runtime_lock_that_disagrees_with_its_tests(run_isolate, workspace,
                                                                   wheelhouse, target_python):
    # the tests need beta<2, so both locks pin beta 1.0; a runtime lock moved to beta 2.0
    # (its real hash) still resolves alone, but not together with the tests
    text = APP.replace('["alpha", "marked"]', '["alpha"]').replace('["gamma"]', '["beta<2"]')
    write_app(workspace, target_python, text)
    r = run_isolate("--root", workspace, "lock", "app", *index_args(wheelhouse))
    assert r.code == 0, r.output
    lock = workspace / "constraints" / "app.txt"
    digest = hashlib.sha256((wheelhouse / "beta-2.0-py3-none-any.whl").read_bytes()).hexdigest()
    moved = re.sub(r"beta==1\.0 \\\n    --hash=sha256:[0-9a-f]+",
                   f"beta==2.0 \\\\\n    --hash=sha256:{digest}", lock.read_text())
    assert "beta==2.0" in moved
    lock.write_text(moved)
    r = run_isolate("--root", workspace, "lock", "app", "--check", *index_args(wheelhouse))
    assert r.code == 1, r.output
    assert "gives other pins" in r.err
    assert "beta==1.0" in r.err and "beta==2.0" in r.err


def test_check_a_lock_without_isolate_header(run_isolate, locked):
    lock = locked / "constraints" / "app.txt"
    lock.write_text("\n".join(ln for ln in lock.read_text().splitlines()
                              if not ln.startswith("# isolate-lock:")) + "\n")
    r = run_isolate("--root", locked, "lock", "app", "--check", "--no-resolve")
    assert r.code == 1
    assert "has no isolate header" in r.err


def test_check_an_unparsable_lock(run_isolate, locked):
    (locked / "constraints" / "app.txt").write_text("this is not a lock\n")
    r = run_isolate("--root", locked, "lock", "app", "--check", "--no-resolve")
    assert r.code == 2
    assert "app.txt: not a valid lock" in r.err
    assert "this is not a lock" in r.err


def test_check_without_a_lock(run_isolate, workspace, target_python):
    write_app(workspace, target_python)
    r = run_isolate("--root", workspace, "lock", "app", "--check", "--no-resolve")
    assert r.code == 2
    assert f"lock {workspace / 'constraints' / 'app.txt'} does not exist" in r.err
    assert "hint: run `isolate lock app` to create it" in r.err


# -- failures leave no trace ---------------------------------------------------------------


def test_unsatisfiable_requirements_leave_the_locks_unchanged(run_isolate, locked, wheelhouse,
                                                              target_python):
    before = snapshot(locked / "constraints")
    write_app(locked, target_python, APP.replace('"marked"]', '"marked", "conflicted"]'))
    r = run_isolate("--root", locked, "lock", "app", *index_args(wheelhouse))
    assert r.code == 2, r.output
    assert "error: cannot resolve the requirements of runtime profile 'app'" in r.err
    assert "conflicted" in r.err and "beta" in r.err
    assert r.err.rstrip().splitlines()[-1].startswith("hint:")
    assert snapshot(locked / "constraints") == before


def test_unsatisfiable_requirements_write_no_lock(run_isolate, workspace, wheelhouse,
                                                   target_python, tool_env):
    write_app(workspace, target_python, APP.replace('"marked"]', '"beta>=5"]'))
    r = run_isolate("--root", workspace, "lock", "app", *index_args(wheelhouse))
    assert r.code == 2, r.output
    assert "beta>=5" in r.err
    assert list((workspace / "constraints").iterdir()) == []


@pytest.mark.parametrize(("backend", "diagnosis"), [
    ("uv", "No solution found when resolving dependencies"),
    ("pip-tools", "conflicting dependencies"),  # pip's own words
])
def test_unsatisfiable_requirements_show_the_diagnosis_not_a_traceback(
        run_isolate, workspace, wheelhouse, target_python, tool_env, backend, diagnosis):
    write_app(workspace, target_python, APP.replace('"marked"]', '"marked", "conflicted"]'))
    r = run_isolate("--root", workspace, "lock", "app", "--backend", backend,
                    *index_args(wheelhouse))
    assert r.code == 2, r.output
    assert diagnosis in r.err, r.err
    assert "conflicted" in r.err and "beta" in r.err
    assert "Traceback" not in r.err, r.err


@pytest.mark.parametrize("found", ["one", "none"])
def test_no_interpreter_of_the_profile_version(run_isolate, workspace, tmp_path, monkeypatch,
                                               found):
    write_app(workspace, "3.8")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    if found == "one":
        (bindir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(bindir))
    r = run_isolate("--root", workspace, "lock", "app", "--backend", "pip-tools", "--no-index")
    assert r.code == 3, r.output
    have = f"{sys.version_info[0]}.{sys.version_info[1]}" if found == "one" else "none"
    assert "no CPython 3.8 found on this machine" in r.err
    assert f"found: {have}" in r.err
    assert "hint: install one (e.g. `pyenv install 3.8`) or put a python3.8 on PATH" in r.err
    assert list((workspace / "constraints").iterdir()) == []


# -- keeping and moving pins ----------------------------------------------------------------


def test_existing_pins_are_kept_and_upgrade_package_moves_one(run_isolate, locked, wheelhouse,
                                                              newer_wheelhouse):
    constraints = locked / "constraints"
    both = index_args(wheelhouse, newer_wheelhouse)
    before = snapshot(constraints)

    r = run_isolate("--root", locked, "lock", "app", *both)
    assert r.code == 0, r.output
    assert snapshot(constraints) == before  # newer releases alone change nothing

    r = run_isolate("--root", locked, "lock", "app", "--upgrade-package", "beta", *both)
    assert r.code == 0, r.output
    assert pins(constraints / "app.txt")["beta"] == "2.1"
    assert pins(constraints / "app.txt")["alpha"] == "1.1"
    assert "-beta==2.0" in r.out and "+beta==2.1" in r.out
    assert "alpha" not in r.out.split("+++ resolved", 1)[1]

    r = run_isolate("--root", locked, "lock", "app", "--upgrade", *both)
    assert r.code == 0, r.output
    assert pins(constraints / "app.txt")["alpha"] == "1.2"


def test_lock_to_another_output_dir(run_isolate, locked, wheelhouse, tmp_path):
    out = tmp_path / "elsewhere"
    r = run_isolate("--root", locked, "lock", "app", "-o", out, *index_args(wheelhouse))
    assert r.code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["app-tests.txt", "app.txt"]
    assert pins(out / "app.txt") == pins(locked / "constraints" / "app.txt")


# -- the backends ----------------------------------------------------------------------------


def test_the_default_backend_needs_no_interpreter_of_the_profile_version(
        run_isolate, workspace, wheelhouse, tmp_path, monkeypatch):
    # uv resolves for the profile's version and platform: the only CPython it can find is
    # this one (uv wants one, of any version, to build sdists with), not a 3.8
    write_app(workspace, "3.8")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(bindir))
    r = run_isolate("--root", workspace, "lock", "app", *index_args(wheelhouse))
    assert r.code == 0, r.output
    runtime = pins(workspace / "constraints" / "app.txt")
    assert "oldpy" in runtime and "newpy" not in runtime  # markers evaluated for 3.8
    assert "by uv " in (workspace / "constraints" / "app.txt").read_text()


def test_the_default_backend_refuses_a_wheel_that_does_not_fit_the_target(
        run_isolate, workspace, wheelhouse, target_python, tmp_path):
    # uv resolves for the profile's platform (manylinux for its glibc floor): a wheel for
    # a newer glibc is refused when locking, not first when bundling
    xy = target_python.replace(".", "")
    wh = tmp_path / "wh"
    shutil.copytree(wheelhouse, wh)
    build_wheel(wh, "native", "1.0", tag=f"cp{xy}-cp{xy}-manylinux_2_28_x86_64")
    write_app(workspace, target_python, APP.replace('"marked"]', '"marked", "native"]')
              + '[target]\nglibc = "2.17"\n')
    r = run_isolate("--root", workspace, "lock", "app", *index_args(wh))
    assert r.code == 2, r.output
    assert "native" in r.err and "manylinux_2_17" in r.err
    assert list((workspace / "constraints").iterdir()) == []


def test_pip_tools_writes_the_same_lock_as_the_default(run_isolate, locked_template, workspace,
                                                       wheelhouse, target_python, tool_env):
    write_app(workspace, target_python)
    r = run_isolate("--root", workspace, "lock", "app", "--backend", "pip-tools",
                    *index_args(wheelhouse))
    assert r.code == 0, r.output
    template = locked_template[0]
    for name in ("app.txt", "app-tests.txt"):
        by_pip_tools = (workspace / "constraints" / name).read_text().splitlines()
        by_uv = (template / "constraints" / name).read_text().splitlines()
        # one line differs, the one that names the backend; the format does not flip
        differ = [(a, b) for a, b in zip(by_uv, by_pip_tools, strict=True) if a != b]
        assert len(differ) == 1, differ
        assert "by uv " in differ[0][0] and "by pip-tools " in differ[0][1]


def test_without_uv_the_default_is_pip_tools(run_isolate, workspace, wheelhouse, target_python,
                                             tool_env, tmp_path, monkeypatch):
    write_app(workspace, target_python)
    monkeypatch.setitem(sys.modules, "uv", None)  # `import uv` fails
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = run_isolate("--root", workspace, "lock", "app", *index_args(wheelhouse))
    assert r.code == 0, r.output
    assert "by pip-tools " in (workspace / "constraints" / "app.txt").read_text()


def test_uv_backend_missing_is_an_environment_problem(run_isolate, workspace, tmp_path,
                                                      monkeypatch, target_python):
    write_app(workspace, target_python)
    monkeypatch.setitem(sys.modules, "uv", None)  # `import uv` fails
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = run_isolate("--root", workspace, "lock", "app", "--backend", "uv", "--no-index")
    assert r.code == 3, r.output
    assert "the uv backend needs uv, which is not installed" in r.err
    assert "--backend pip-tools" in r.err


PIP_TOOLS_BLOCK = """\
oslo-service==4.8.0 \\
    --hash=sha256:5f82 \\
    --hash=sha256:8150
    # via
    #   nova
    #   oslo-messaging
    #   oslo-service
"""
UV_BLOCK = PIP_TOOLS_BLOCK.replace("    #   oslo-service\n", "")


@pytest.mark.parametrize("text", [PIP_TOOLS_BLOCK, UV_BLOCK])
def test_annotations_take_one_form_whichever_backend_wrote_them(text):
    (pin,) = parse_lock(text).pins
    assert canonical_block(pin).text == UV_BLOCK


def test_a_self_reference_that_was_the_only_source_leaves_no_via():
    (pin,) = parse_lock("alpha==1.1 \\\n    --hash=sha256:ab\n    # via alpha\n").pins
    assert canonical_block(pin).text == "alpha==1.1 \\\n    --hash=sha256:ab\n"
    (pin,) = parse_lock("alpha==1.1 \\\n    --hash=sha256:ab\n    # via\n    #   alpha\n"
                        "    #   -r app.in\n").pins
    assert canonical_block(pin).text.endswith("    --hash=sha256:ab\n    # via -r app.in\n")


# -- the committed Nova lock --------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("ISOLATE_NETWORK_TESTS") != "1" and os.environ.get("CI") != "true",
    reason="needs PyPI; set ISOLATE_NETWORK_TESTS=1 (CI=true does)",
)
def test_committed_nova_lock_is_fresh(run_isolate):
    r = run_isolate("lock", "nova", "--check", cwd=REPO)
    assert r.code == 0, r.output
    assert "nova.txt: fresh (header and a fresh resolution match the profile: uv " in r.out
