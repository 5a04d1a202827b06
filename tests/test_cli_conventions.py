"""Conventions every isolate command follows, as a user of pip-tools, uv and nox expects:
global -v/-q/--color/--root anywhere, help for everything, environment variables, the
workspace and profile files named, broken profiles listed, completion scripts, grouped
notes."""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import pytest

from isolate.cli import COMMANDS, App, _subparsers, build_parser, paint, use_color
from isolate.cli.completion_cmd import commands
from isolate.cli.lock_cmd import index_options
from isolate.cli.verify_cmd import _grouped, _render
from isolate.verify.report import Finding, VerifyReport
from tests.conftest import index

APP = 'name = "app"\npython = "{python}"\nrequirements = ["alpha"]\n'


def _app_ws(workspace: Path, python: str = "3.12") -> Path:
    (workspace / "profiles" / "runtimes" / "app.toml").write_text(APP.format(python=python))
    return workspace


# -- global options ------------------------------------------------------------------

def test_global_options_work_before_and_after_the_command(run_isolate, workspace):
    _app_ws(workspace)
    before = run_isolate("-v", "--root", workspace, "profiles", "show", "app")
    after = run_isolate("profiles", "show", "app", "--root", workspace, "-v")
    for r in (before, after):
        assert r.code == 0, r.output
        assert f"workspace: {workspace} (--root)" in r.err
        assert f"runtime profile app: {workspace}/profiles/runtimes/app.toml" in r.err


def test_verbose_and_quiet_exclude_each_other(run_isolate):
    r = run_isolate("-v", "profiles", "-q")
    assert r.code == 2
    assert "-v/--verbose and -q/--quiet exclude each other" in r.err


def test_root_without_profiles_is_an_error_not_a_fallback(run_isolate, tmp_path):
    r = run_isolate("profiles", "--root", tmp_path)
    assert r.code == 2
    assert f"--root {tmp_path}: not a workspace (it has no profiles/)" in r.err
    assert "nova" not in r.out


def test_color_honours_no_color_and_force_color(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert not use_color("auto", pipe)
    assert use_color("always", pipe) and not use_color("never", pipe)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert use_color("auto", pipe)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", pipe)
    assert use_color("always", pipe)
    assert paint("error: x", True) == "\x1b[1;31merror:\x1b[0m x"
    assert paint("error: x", False) == "error: x"


def test_color_always_colours_errors(run_isolate, tmp_path):
    r = run_isolate("--color", "always", "profiles", "--root", tmp_path / "nowhere")
    assert r.code == 2
    assert "\x1b[1;31merror:\x1b[0m" in r.err


# -- help ----------------------------------------------------------------------------

def test_every_command_and_option_has_help():
    def parsers(p: argparse.ArgumentParser, path: str = "isolate"):
        yield path, p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in a._choices_actions}
                for name, child in a.choices.items():
                    assert helps.get(name), f"{path} {name}: no help in the command list"
                    yield from parsers(child, f"{path} {name}")

    for path, p in parsers(build_parser()):
        if path != "isolate":
            assert p.description, f"{path}: no description"
        for a in p._actions:
            if a.option_strings or a.dest not in ("command", "action"):
                assert a.help, f"{path} {a.option_strings or a.dest}: no help"


def test_help_documents_the_environment_variables(run_isolate):
    r = run_isolate("--help")
    for name in ("ISOLATE_INDEX_URL", "ISOLATE_FIND_LINKS", "ISOLATE_CACHE_DIR",
                 "ISOLATE_CA_BUNDLE", "NETRC", "NO_COLOR", "FORCE_COLOR"):
        assert name in r.out
    lock = run_isolate("lock", "--help")
    assert "--backend" in lock.out and "the resolver" in lock.out
    assert "$ISOLATE_INDEX_URL" in lock.out
    assert "RESULTS.json" in run_isolate("matrix", "--help").out


# -- environment variables and the index --------------------------------------------

def _index_args(**kw: object) -> argparse.Namespace:
    base = {"index_url": None, "find_links": [], "no_index": False, "cert": None}
    return argparse.Namespace(**{**base, **kw})


def test_index_options_come_from_the_environment(monkeypatch, tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("not checked here")
    monkeypatch.setenv("ISOLATE_INDEX_URL", "https://u:secret@example.org/simple")
    monkeypatch.setenv("ISOLATE_FIND_LINKS", "/a /b")
    monkeypatch.setenv("ISOLATE_CA_BUNDLE", str(pem))
    opts = index_options(_index_args())
    assert opts.index_url == "https://u:secret@example.org/simple"
    assert opts.find_links == ("/a", "/b")
    assert f"--cert={pem}" in opts.pip_args()
    assert opts.env()["SSL_CERT_FILE"] == str(pem)
    assert not any("--cert" in a for a in opts.uv_args())
    # the command line wins
    opts = index_options(_index_args(index_url="https://other/simple", find_links=["/c"]))
    assert opts.index_url == "https://other/simple" and opts.find_links == ("/c",)
    assert index_options(_index_args(no_index=True)).index_url is None


def test_a_missing_ca_bundle_is_an_input_error(run_isolate, workspace, tmp_path):
    _app_ws(workspace)
    r = run_isolate("lock", "app", "--root", workspace, "--cert", tmp_path / "none.pem")
    assert r.code == 2
    assert "--cert" in r.err and "no such file" in r.err


def test_lock_verbose_streams_the_resolver_and_names_its_files(run_isolate, workspace,
                                                               wheelhouse, target_python):
    _app_ws(workspace, target_python)
    r = run_isolate("-v", "lock", "app", "--root", workspace, *index(wheelhouse))
    assert r.code == 0, r.output
    assert f"workspace: {workspace}" in r.err
    assert "runtime profile app:" in r.err
    assert "$ " in r.err and "uv pip compile" in r.err and "--verbose" in r.err  # the default
    quiet = run_isolate("-q", "lock", "app", "--root", workspace, *index(wheelhouse))
    assert quiet.code == 0 and quiet.err == ""


# -- profiles ------------------------------------------------------------------------

def test_profiles_lists_each_source_and_marks_a_broken_one(run_isolate, workspace):
    _app_ws(workspace)
    (workspace / "profiles" / "runtimes" / "broken.toml").write_text("name = [\n")
    r = run_isolate("profiles", "--root", workspace)
    assert r.code == 2
    assert f"workspace: {workspace}" in r.out
    assert "app " in r.out and "from profiles/runtimes/app.toml" in r.out
    assert "broken                 BROKEN" in r.out
    assert "nova" in r.out and "from built-in profiles/runtimes/nova.toml" in r.out
    assert "broken.toml: TOML syntax error" in r.err


def test_profiles_list_takes_no_argument(run_isolate):
    r = run_isolate("profiles", "list", "nova")
    assert r.code == 2
    assert "`isolate profiles list` takes no argument (got 'nova')" in r.err
    assert "isolate profiles show nova" in r.err


# -- completion ----------------------------------------------------------------------

def test_bash_completion_is_a_script_bash_sources(run_isolate, tmp_path):
    r = run_isolate("completion", "bash")
    assert r.code == 0
    script = tmp_path / "isolate.bash"
    script.write_text(r.out)
    probe = (f"source {script} && complete -p isolate && "
             "COMP_WORDS=(isolate -v lo); COMP_CWORD=2; _isolate; echo \"${COMPREPLY[@]}\"; "
             "COMP_WORDS=(isolate lock --backend ''); COMP_CWORD=3; _isolate; "
             "echo \"${COMPREPLY[@]}\"; "
             "COMP_WORDS=(isolate python b); COMP_CWORD=2; _isolate; echo \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["complete -o default -F _isolate isolate", "lock",
                                        "pip-tools uv", "build"]


def test_zsh_and_fish_completion_know_every_command(run_isolate):
    names = [c.path[0] for c in commands(build_parser()) if len(c.path) == 1]
    zsh = run_isolate("completion", "zsh").out
    assert zsh.startswith("#compdef isolate") and "bashcompinit" in zsh
    fish = run_isolate("completion", "fish").out
    for name in names:
        assert f"-a {name}" in fish
    assert "-l color -x -a 'auto always never'" in fish


# -- verify's notes ------------------------------------------------------------------

def _note(path: str, sample: str) -> Finding:
    return Finding(severity="note", check="relocation", path=path,
                   message=f"names the build prefix in .dynstr ({sample!r}), but no dynamic "
                           "tag refers to it")


def test_verify_groups_repeated_notes_and_lists_them_under_v(capsys):
    findings = (_note("lib/a.so", "/build/a"), _note("lib/b.so", "/build/b"),
                Finding(severity="error", check="integrity", path="x", message="changed"),
                _note("lib/c.so", "/build/c"))
    groups = _grouped(findings)
    assert [len(members) for _first, members in groups] == [3, 1]
    report = VerifyReport(bundle="b", name="b", host=None, findings=findings, checks=(),
                          seconds=0.0)
    for verbose in (0, 1):
        app = App.__new__(App)
        app.verbose, app.quiet, app.color = verbose, False, False
        _render(app, report)
        out = capsys.readouterr().out
        assert "3 files" in out and out.count("names the build prefix") == 1
        assert ("lib/b.so ('/build/b')" in out) == bool(verbose)
        assert "(-v lists them)" in out if not verbose else "lib/c.so" in out


@pytest.mark.parametrize("argv", [["profiles", "-q"], ["-q", "profiles"]])
def test_quiet_is_accepted_by_every_command_position(run_isolate, argv):
    assert run_isolate(*argv).code == 0


def test_a_command_line_that_starts_with_its_command_gets_the_same_parser_alone():
    """main() builds only the command's own parser for `isolate COMMAND ...`: every
    command's parsers (and their actions') read and explain the same as with all."""
    every = {p.prog: p.format_help() for p in _subparsers(build_parser())}
    for name in COMMANDS:
        alone = {p.prog: p.format_help() for p in _subparsers(build_parser(name))}
        assert alone and alone == {prog: text for prog, text in every.items()
                                   if prog.split()[1] == name}
