"""The matrix probe runs a test command with the runner's own semantics, in the small
runtime on a local host (the hostile environment): unittest's command line in every form,
commands isolate reads no outcomes from (JUnit file, else the exit code), commands that
fail before any test runs, and a runtime that does not start."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from isolate.interpreters import Discovery
from isolate.matrix.execute import EXIT_CODE_NOTE, open_bundle
from isolate.matrix.run import run_matrix
from isolate.model.results import Cell, Results
from isolate.proc import Runner
from isolate.profiles import Catalog
from isolate.report import render_text
from isolate.report.render_markdown import render_markdown
from tests.conftest import bundle_dir

TOOL = "tool.tests.ToolTests."
ALL_TOOL_TESTS = {f"{TOOL}{t}": "passed" for t in (
    "test_alpha_version", "test_isolated", "test_sqlite", "test_ssl",
    "test_paths_are_the_runtimes")} | {f"{TOOL}test_sometimes_skipped": "skipped"}


def local_host() -> str:
    found = [f"local-{m[0]}.{m[1]}" for m in Discovery(Runner()).by_minor()]
    if not found:
        pytest.skip("needs a local interpreter to stand in as a host's Python")
    return found[0]


def observe(bundle: Path, command: Sequence[str], *, junit: str | None = None,
            hosts: Sequence[str] | None = None) -> Results:
    """The matrix of ``bundle`` on local hosts, with ``command`` as its test command."""
    b = open_bundle(bundle)
    b = dataclasses.replace(b, manifest=dataclasses.replace(
        b.manifest, test_command=tuple(command), test_junit=junit))
    catalog = Catalog(root=None, discovery=Discovery(Runner()))
    return run_matrix(b, [catalog.host(h).profile for h in hosts or [local_host()]],
                      runner=Runner())


def one(bundle: Path, command: Sequence[str], *, junit: str | None = None) -> Cell:
    (cell,) = observe(bundle, command, junit=junit).cells
    return cell


@pytest.mark.parametrize(("command", "want"), [
    (["discover", "-s", "tool"], ALL_TOOL_TESTS),
    (["discover", "-s", "tool", "-p", "tests.py", "-t", "{site-packages}", "-k", "alpha"],
     {f"{TOOL}test_alpha_version": "passed"}),
    (["-k", "sqlite", "tool.tests"], {f"{TOOL}test_sqlite": "passed"}),
    (["tool.tests.ToolTests.test_ssl", "tool.tests.ToolTests.test_isolated"],
     {f"{TOOL}test_ssl": "passed", f"{TOOL}test_isolated": "passed"}),
    (["-f", "-v", "tool.tests.ToolTests"], ALL_TOOL_TESTS),
], ids=["discover-dotted-start", "discover-p-t-k", "k-pattern", "method-names", "failfast"])
def test_unittest_runs_through_its_own_command_line(built: Path, command: list[str],
                                                     want: dict[str, str]) -> None:
    cell = one(bundle_dir(built), ["-m", "unittest", *command])
    assert cell.observed.status == "passed", (cell.observed.reason, cell.observed.output_tail)
    assert dict(cell.observed.tests) == want
    assert cell.observed.outcomes_from == "unittest" and cell.observed.notes == ()


@pytest.mark.parametrize(("command", "reason"), [
    (["--bogus"], "the test command failed before any test ran (exit code 2): "
                  "python -m unittest: error: unrecognized arguments: --bogus"),
    (["tool.nothere"], "tests could not be collected: ImportError: Failed to import test "
                       "module: nothere: ModuleNotFoundError: No module named 'tool.nothere'"),
    (["discover", "-s", "nothere"], "ImportError: Start directory is not importable: 'nothere'"),
    (["discover", "-s", "tool", "-p", "nomatch*.py"], "the test command ran no tests: "),
], ids=["usage-error", "import-error", "bad-start-directory", "no-tests"])
def test_a_command_that_runs_no_test_is_an_error_in_the_runners_words(
        built: Path, command: list[str], reason: str) -> None:
    results = observe(bundle_dir(built), ["-m", "unittest", *command])
    (cell,) = results.cells
    assert cell.observed.status == "error"
    assert reason in (cell.observed.reason or ""), cell.observed.reason
    assert dict(cell.observed.tests) == {}  # no invented test, no "absent" list
    assert cell.observed.runtime  # the runtime did start
    assert (cell.observed.reason or "")[:100] in render_text(results)


def test_another_command_gives_one_outcome_from_its_exit_code_and_says_so(built: Path) -> None:
    results = observe(bundle_dir(built), ["-c", "import sys; sys.exit(3)"])
    (cell,) = results.cells
    assert cell.observed.status == "failed"
    assert dict(cell.observed.tests) == {"command: -c import sys; sys.exit(3)": "failed"}
    assert cell.observed.outcomes_from == "exit-code"
    assert cell.observed.notes == (EXIT_CODE_NOTE,)
    assert "outcomes from the exit code only" in render_text(results)
    assert "outcomes from the exit code only" in render_markdown(results)
    assert Results.loads(results.dumps()).cells[0].observed.notes == (EXIT_CODE_NOTE,)


JUNIT = ('<testsuite><testcase classname="suite.Case" name="test_ok"/>'
         '<testcase classname="suite.Case" name="test_bad"><failure message="no"/></testcase>'
         '<testcase classname="suite.Case" name="test_skip"><skipped/></testcase></testsuite>')


def test_another_command_with_a_junit_file_records_its_tests(built: Path) -> None:
    code = f"import os; os.makedirs('out'); open('out/r.xml', 'w').write({JUNIT!r})"
    cell = one(bundle_dir(built), ["-c", code], junit="out/r.xml")
    assert cell.observed.status == "failed"
    assert dict(cell.observed.tests) == {"suite.Case.test_ok": "passed",
                                         "suite.Case.test_bad": "failed",
                                         "suite.Case.test_skip": "skipped"}
    assert cell.observed.outcomes_from == "junit" and cell.observed.notes == ()


def test_a_junit_file_the_command_did_not_write_is_an_error(built: Path) -> None:
    cell = one(bundle_dir(built), ["-c", "print('no report today')"], junit="r.xml")
    assert cell.observed.status == "error"
    assert cell.observed.reason == ("the test command did not write the JUnit XML file "
                                    "<cwd>/r.xml (exit code 0): no report today")
    assert dict(cell.observed.tests) == {}


def test_a_runtime_that_does_not_start_shows_the_loaders_message(built: Path,
                                                                 tmp_path: Path) -> None:
    broken = tmp_path / bundle_dir(built).name
    shutil.copytree(bundle_dir(built), broken, symlinks=True)
    (libpython,) = (broken / "python" / "lib").glob("libpython3*.so*")
    libpython.write_bytes(b"")  # the loader refuses it
    results = observe(broken, ["-m", "unittest", "tool.tests"])
    (cell,) = results.cells
    assert cell.observed.status == "error"
    reason = cell.observed.reason or ""
    assert reason.startswith("the runtime did not start: <bundle>/"), reason
    assert "error while loading shared libraries: <bundle>/python/" in reason
    assert f"{libpython.name}: file too short" in reason
    assert dict(cell.observed.tests) == {}
