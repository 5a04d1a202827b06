"""``isolate report``: JSON, HTML, Markdown and JUnit renderings, shard merging, bad input
and exit codes, and the HTML page as headless Chromium shows it.

The results are built here: a baseline cell, an equivalent cell, a non-equivalent cell
(a failed test and a differing fingerprint field; it was predicted compatible, so it is
also a prediction mismatch), an error cell whose output tail holds ``<script>`` and ``&``,
a rootfs cell that was not run, and a static cell that is predicted only.
"""

from __future__ import annotations

import dataclasses
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from isolate.model.results import (
    SCHEMA,
    Cell,
    Observation,
    Prediction,
    Results,
    with_equivalence,
)
from isolate.report import difference_text, problems, render_text
from isolate.report.merge import merge_results
from isolate.report.render_html import render_html
from isolate.report.render_json import render_json
from isolate.report.render_junit import render_junit, split_test_id
from isolate.report.render_markdown import LIMIT, render_markdown

BUNDLE = {"name": "demo-1.0-py3.11", "runtime": "demo", "version": "1.0",
          "manifest_sha256": "ab" * 32, "glibc_floor": "2.34"}
TESTS = [f"tests.test_app.TestApp.test_{n}" for n in ("start", "quote", "locale", "ssl", "sqlite")]
DIFFERING = "tests.test_app.TestApp.test_locale"
ODD = 'tests.test_app.test_param[<b>&"x"|`y`]'  # a test id full of markup characters
RUNTIME = {"python": "3.11.7", "sys_path": ["lib/python3.11", "lib/python3.11/site-packages"],
           "distributions": {"demo": "1.0", "six": "1.16.0"}, "manifest_sha256": "ab" * 32}
TAIL = ('Traceback (most recent call last):\n  <script>alert("owned")</script> & \'quotes\'\n'
        "\x1b[31m/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found\x1b[0m\n")


def _host(distro: str, release: str, glibc: str, python: str | None = "3.11.2") -> dict[str, object]:
    return {"distro": distro, "release": release, "arch": "x86_64",
            "libc": {"family": "glibc", "version": glibc}, "python": python}


def _cell(host: str, executor: str, *, verdict: str = "compatible", status: str = "passed",
          tests: dict[str, str] | None = None, runtime: dict[str, object] | None = None,
          reason: str | None = None, tail: str = "", facts: dict[str, object] | None = None,
          reasons: tuple[str, ...] = ("glibc 2.36 >= floor 2.34",)) -> Cell:
    observed = status != "not-run"
    return Cell(host=host, host_name=host.replace("-", " ").title(), executor=executor,
                host_facts=facts or _host("debian", "12", "2.36"),
                predicted=Prediction(verdict=verdict, reasons=reasons),
                observed=Observation(
                    status=status, reason=reason,
                    tests=dict.fromkeys(TESTS, "passed") if tests is None and observed else tests or {},
                    runtime=dict(RUNTIME if runtime is None and observed else runtime or {}),
                    host={"distro": "debian 12", "glibc": "2.36", "kernel": "6.1.0"} if observed else {},
                    output_tail=tail, seconds=12.5 if observed else 0.0))


def make_cells() -> list[Cell]:
    failing = {**dict.fromkeys(TESTS, "passed"), DIFFERING: "failed", ODD: "skipped"}
    return [
        _cell("local-py311", "local"),
        _cell("debian-12", "rootfs"),
        _cell("debian-13", "rootfs", status="failed", tests=failing,
              runtime={**RUNTIME, "python": "3.11.9"}, facts=_host("debian", "13", "2.41")),
        _cell("debian-11", "rootfs", verdict="incompatible", status="error",
              reasons=("glibc 2.31 < floor 2.34 (set by lib/libssl.so.3, GLIBC_2.34)",),
              reason="the bundled interpreter did not start (exit 1)", tail=TAIL, tests={},
              facts=_host("debian", "11", "2.31")),
        _cell("debian-12-nopython", "rootfs", status="not-run",
              reason="bubblewrap (bwrap) is not installed; fix: apt-get install bubblewrap"),
        _cell("alpine-3.20", "static", verdict="incompatible", status="not-run",
              reasons=("musl libc: the bundle needs glibc",),
              facts={"distro": "alpine", "release": "3.20", "libc": {"family": "musl",
                                                                     "version": "1.2.5"}}),
    ]


def make_results(cells: list[Cell] | None = None, *, baseline: str | None = "local-py311",
                 bundle: dict[str, object] | None = None,
                 shard: tuple[int, int] | None = None) -> Results:
    chosen, final = with_equivalence(make_cells() if cells is None else cells, baseline)
    return Results(bundle=dict(BUNDLE if bundle is None else bundle), cells=final,
                   baseline=chosen, shard=shard, tool_version="0.1.0")


def write(path: Path, results: Results) -> Path:
    path.write_text(results.dumps())
    return path


# -- the model as the report sees it ----------------------------------------------------


def test_fixture_cells_are_what_the_tests_assume():
    r = make_results()
    by = {c.host: c for c in r.cells}
    assert r.baseline == "local-py311" and by["local-py311"].baseline
    assert by["debian-12"].equivalent is True
    assert by["debian-13"].equivalent is False
    assert ("python", "3.11.7", "3.11.9") in by["debian-13"].differences.fingerprint
    assert (DIFFERING, "passed", "failed") in by["debian-13"].differences.tests
    assert by["debian-12-nopython"].equivalent is None and by["alpine-3.20"].equivalent is None
    found = problems(r)
    assert [p.split(":")[0] for p in found] == ["debian-13"]  # debian-11: failed as predicted
    assert "predicted compatible but observed failed" in found[0]


def test_json_round_trip(tmp_path, run_isolate):
    r = make_results()
    assert Results.loads(render_json(r)).to_dict() == r.to_dict()
    src = write(tmp_path / "results.json", r)
    res = run_isolate("report", src, "--json", tmp_path / "out" / "merged.json", "--no-fail")
    assert res.code == 0, res.err
    assert "wrote json:" in res.out
    again = Results.loads((tmp_path / "out" / "merged.json").read_text())
    assert again.to_dict() == r.to_dict()
    assert again.to_dict()["schema"] == SCHEMA


def test_text_summary_one_line_per_cell_and_exit_1(tmp_path, run_isolate):
    src = write(tmp_path / "results.json", make_results())
    res = run_isolate("report", src)
    assert res.code == 1, res.err
    lines = res.out.splitlines()
    for host in ("local-py311", "debian-12", "debian-13", "debian-11", "alpine-3.20"):
        assert sum(line.split()[0] == host for line in lines if line.startswith("  ")) == 1
    assert "[prediction mismatch]" in next(x for x in lines if x.startswith("  debian-13 "))
    assert "not run: static host: predicted only" in res.out
    assert "FAIL: 1 cell needs attention" in res.out
    assert run_isolate("report", src, "--no-fail").code == 0


def test_all_good_exits_0(tmp_path, run_isolate):
    cells = [c for c in make_cells() if c.host in ("local-py311", "debian-12", "alpine-3.20")]
    src = write(tmp_path / "results.json", make_results(cells))
    res = run_isolate("report", src)
    assert res.code == 0, res.out + res.err
    assert "OK: no regressions: 2 passed; 1 not run (1 predicted incompatible)" in res.out
    assert "every observed cell passed" not in res.out
    assert "no required hosts: the runtime profile names none" in res.out
    assert "not run: static host: predicted only" in res.out


# -- merging ----------------------------------------------------------------------------


def _shards(tmp_path: Path) -> tuple[Path, Path]:
    cells = make_cells()
    one = make_results(cells[0::2], shard=(1, 2))  # local-py311, debian-13, debian-12-nopython
    two = make_results(cells[1::2], baseline=None, shard=(2, 2))  # debian-12 is its own baseline
    return write(tmp_path / "shard-1.json", one), write(tmp_path / "shard-2.json", two)


def test_merge_shards_recomputes_equivalence(tmp_path, run_isolate):
    a, b = _shards(tmp_path)
    out = tmp_path / "merged.json"
    res = run_isolate("report", "merge", b, a, "-o", out)
    assert res.code == 0, res.err
    assert "6 cells" in res.out and "baseline local-py311" in res.out
    merged = Results.loads(out.read_text())
    assert merged.shard is None and merged.baseline == "local-py311"
    assert {c.host for c in merged.cells} == {c.host for c in make_cells()}
    whole = {c["host"]: c for c in make_results().to_dict()["cells"]}
    assert {c["host"]: c for c in merged.to_dict()["cells"]} == whole  # as if run unsharded
    assert [c.host for c in merged.cells][:3] == ["local-py311", "debian-13", "debian-12-nopython"]
    # several files given to `isolate report` are merged the same way
    res = run_isolate("report", a, b, "--json", tmp_path / "r.json", "--no-fail")
    assert res.code == 0, res.err
    assert Results.loads((tmp_path / "r.json").read_text()).to_dict() == merged.to_dict()


def test_merge_notes_missing_shards(tmp_path):
    cells = make_cells()
    merged, notes = merge_results([("s1", make_results(cells[:2], shard=(1, 3))),
                                   ("s3", make_results(cells[2:3], baseline=None, shard=(3, 3)))])
    assert len(merged.cells) == 3
    assert notes == ("shard 2 of 3 not given: the merged results are incomplete",)


def test_merge_refuses_different_bundles(tmp_path, run_isolate):
    a, _ = _shards(tmp_path)
    other = make_results(make_cells()[1:2], bundle={**BUNDLE, "manifest_sha256": "cd" * 32})
    b = write(tmp_path / "other-bundle.json", other)
    res = run_isolate("report", "merge", a, b, "-o", tmp_path / "m.json")
    assert res.code == 2
    assert "different bundles" in res.err and str(a) in res.err and str(b) in res.err
    assert not (tmp_path / "m.json").exists()
    assert run_isolate("report", a, b).code == 2


def test_merge_refuses_duplicate_cells(tmp_path, run_isolate):
    a, _ = _shards(tmp_path)
    b = write(tmp_path / "again.json", make_results(make_cells()[:1]))  # local-py311 again
    res = run_isolate("report", "merge", a, b, "-o", tmp_path / "m.json")
    assert res.code == 2
    assert "duplicate cell for host 'local-py311'" in res.err
    assert str(a) in res.err and str(b) in res.err
    res = run_isolate("report", "merge", a, a, "-o", tmp_path / "m.json")
    assert res.code == 2 and "both shard 1/2" in res.err


def test_baseline_option(tmp_path, run_isolate):
    src = write(tmp_path / "results.json", make_results())
    res = run_isolate("report", src, "--baseline", "debian-13", "--json", tmp_path / "b.json")
    assert res.code == 1
    r = Results.loads((tmp_path / "b.json").read_text())
    assert r.baseline == "debian-13"
    assert {c.host for c in r.cells if c.equivalent is False} == {"local-py311", "debian-12",
                                                                 "debian-11"}
    res = run_isolate("report", src, "--baseline", "rhel-9")
    assert res.code == 2 and "no such host" in res.err and "debian-12" in res.err
    res = run_isolate("report", src, "--baseline", "alpine-3.20")
    assert res.code == 2 and "was not observed" in res.err


# -- bad input --------------------------------------------------------------------------


def test_other_schema_version_exit_2(tmp_path, run_isolate):
    data = make_results().to_dict()
    data["schema"] = "isolate.results/0"
    data["tool_version"] = "0.0.9"
    src = tmp_path / "old.json"
    src.write_text(json.dumps(data))
    res = run_isolate("report", src, "--html", tmp_path / "r.html")
    assert res.code == 2
    assert str(src) in res.err
    assert "'isolate.results/0'" in res.err and "isolate 0.0.9" in res.err
    assert f"this isolate reads '{SCHEMA}'" in res.err
    assert "re-run `isolate matrix`" in res.err
    assert "Traceback" not in res.err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read results file"),
    ("{not json", "not JSON"),
    (json.dumps({"schema": SCHEMA, "bundle": {}, "required_hosts": [], "cells": [{"host": "x"}]}),
     "cells[0].executor: missing"),
    (json.dumps({"schema": SCHEMA, "bundle": {}, "required_hosts": [], "cells": []}),
     "the results hold no cells"),
    (json.dumps({"schema": SCHEMA, "bundle": {}, "required_hosts": "debian-12", "cells": []}),
     "required_hosts: expected a list of strings"),
])
def test_bad_input_exit_2(tmp_path, run_isolate, content, expected):
    src = tmp_path / "in.json"
    if content is not None:
        src.write_text(content)
    res = run_isolate("report", src)
    assert res.code == 2
    assert expected in res.err and str(src) in res.err
    assert "Traceback" not in res.err


def test_merge_usage_errors(tmp_path, run_isolate):
    a, b = _shards(tmp_path)
    assert "needs -o" in run_isolate("report", "merge", a, b).err
    assert "not an option of `isolate report merge`" in run_isolate(
        "report", "merge", a, b, "-o", tmp_path / "m.json", "--html", tmp_path / "x.html").err
    assert "-o/--output is for `isolate report merge`" in run_isolate(
        "report", a, "-o", tmp_path / "m.json").err


# -- renderings -------------------------------------------------------------------------


def test_markdown_table_and_differing_tests():
    md = render_markdown(make_results())
    assert "| Host | Executor | Predicted | Observed | Equivalent |" in md
    assert md.count("\n| `") == 6
    assert f"- `{DIFFERING}`: passed → **failed**" in md
    assert "**prediction mismatch**" in md
    assert "**not run**: static host: predicted only" in md
    assert "**not run**: bubblewrap \\(bwrap\\) is not installed" in md
    assert "musl libc" in md
    # markup characters only appear inside code spans, where GitHub shows them as text
    assert '- ``tests.test_app.test_param[<b>&"x"|`y`]``: absent → **skipped**' in md
    assert "<script>" not in md and md.count("<b>") == 1


def test_markdown_stays_under_1_mib_with_50000_differing_tests():
    ids = [f"tests.test_big.TestMany.test_case_{i:05d}" for i in range(50_000)]
    base = _cell("local-py311", "local", tests=dict.fromkeys(ids, "passed"))
    broken = _cell("debian-12", "rootfs", status="failed", tests=dict.fromkeys(ids, "failed"))
    md = render_markdown(make_results([base, broken]))
    assert len(md.encode()) < LIMIT
    assert "... and 49,900 more differing tests (list truncated" in md
    assert "under 1 MiB" in md


def test_markdown_budget_truncates_the_page_and_says_so():
    ids = [f"tests.{'x' * 250}.test_{i:03d}" for i in range(100)]
    cells = [_cell("base", "local", tests=dict.fromkeys(ids, "passed"))]
    cells += [_cell(f"host-{n:03d}", "rootfs", status="failed", tests=dict.fromkeys(ids, "error"))
              for n in range(60)]
    md = render_markdown(make_results(cells, baseline="base"))
    assert len(md.encode()) < LIMIT
    assert "**Summary truncated** at cell `host-" in md


def test_junit_parses_and_counts_match():
    r = make_results()
    root = ET.fromstring(render_junit(r))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [c.host for c in r.cells]
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(cases)
        for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            assert int(suite.get(attr, "-1")) == len(suite.findall(f"testcase/{tag}")), attr
    assert int(root.get("tests", "-1")) == len(root.findall("testsuite/testcase"))
    by = {s.get("name"): s for s in suites}
    props = {p.get("name"): p.get("value") for p in by["debian-11"].iter("property")}
    assert props["host"] == "debian-11" and props["executor"] == "rootfs"
    assert props["predicted_verdict"] == "incompatible" and props["glibc_floor"] == "2.34"
    assert props["distro"] == "debian 11" and props["libc"] == "glibc 2.31"
    error = by["debian-11"].find("testcase/error")
    assert error is not None and "<script>" in (error.text or "") and "\x1b" not in (error.text or "")
    failure = by["debian-13"].find("testcase/failure/..")
    assert failure is not None
    assert (failure.get("classname"), failure.get("name")) == split_test_id(DIFFERING)
    skipped = by["alpine-3.20"].find("testcase/skipped")
    assert skipped is not None and "not run: static host" in (skipped.get("message") or "")
    nopy = by["debian-12-nopython"].find("testcase/skipped")
    assert nopy is not None and "bubblewrap" in (nopy.get("message") or "")


def test_split_test_id():
    assert split_test_id("a.b.C.test_x") == ("a.b.C", "test_x")
    assert split_test_id("a.C.test_x[1.5]") == ("a.C", "test_x[1.5]")
    assert split_test_id("lonely") == ("", "lonely")


class _Text(html.parser.HTMLParser):
    """The text a person sees, and the tags and attributes of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "script", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    @classmethod
    def of(cls, page: str) -> _Text:
        parser = cls()
        parser.feed(page)
        return parser

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def test_html_is_self_contained_and_escaped(tmp_path, run_isolate):
    src = write(tmp_path / "results.json", make_results())
    res = run_isolate("report", src, "--html", tmp_path / "report.html", "--no-fail")
    assert res.code == 0, res.err
    page = (tmp_path / "report.html").read_text()
    assert page == render_html(make_results())
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(|<link|<script|@font-face", page, re.I)
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; &amp; &#39;quotes&#39;" in page
    assert "&lt;b&gt;&amp;&#34;x&#34;" in page  # the odd test id, escaped
    parsed = _Text.of(page)
    assert not [t for t, _ in parsed.tags if t in ("script", "img", "iframe", "object", "link")]
    words = parsed.words
    for text in ("local-py311", "debian-13", "incompatible", "not run", "not equivalent",
                 "not observed", "baseline", "prediction mismatch", "glibc floor 2.34",
                 DIFFERING, ODD, '<script>alert("owned")</script>', "1 failed"):
        assert text in words, text


def test_html_marks_every_state_in_words():
    words = _Text.of(render_html(make_results())).words
    assert "1 cell needs attention" in words
    assert "yes (baseline)" in words and "no baseline" not in words
    assert "python 3.11.7 3.11.9" in words  # the differing fingerprint field, both values


def test_html_cuts_long_lists():
    ids = [f"tests.t.T.test_{i:05d}" for i in range(3000)]
    base = _cell("local-py311", "local", tests=dict.fromkeys(ids, "passed"))
    broken = _cell("debian-12", "rootfs", status="failed", tests=dict.fromkeys(ids, "failed"))
    page = render_html(make_results([base, broken]))
    assert "and 2,000 more differing tests" in page
    assert len(page) < 2_000_000


# -- what a person sees: headless Chromium ----------------------------------------------

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def test_html_in_headless_chromium(tmp_path, chromium, run_isolate):
    src = write(tmp_path / "results.json", make_results())
    page = tmp_path / "report.html"
    assert run_isolate("report", src, "--html", page, "--no-fail").code == 0
    url = page.resolve().as_uri()

    done = _chromium(tmp_path / "profile-dom", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Text.of(done.stdout)
    assert not [t for t, _ in dom.tags if t == "script"]  # the output tail stayed text
    words = dom.words
    for text in ("local-py311", "debian-12", "debian-13", "debian-11", "debian-12-nopython",
                 "alpine-3.20", "incompatible", "not run", "not equivalent", "not observed",
                 "prediction mismatch", DIFFERING, '<script>alert("owned")</script>'):
        assert text in words, text

    shot = tmp_path / "report.png"
    done = _chromium(tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1400,900",
                     "--hide-scrollbars", url)
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 900)
    assert len(data) > 20_000  # a page with text and colour, not a blank image
    if os.environ.get("ISOLATE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["ISOLATE_KEEP_SCREENSHOT"])


def test_render_text_matches_cli(tmp_path, run_isolate):
    r = make_results()
    res = run_isolate("report", write(tmp_path / "r.json", r))
    assert res.out == render_text(r)



# -- required hosts ---------------------------------------------------------------------

NOVA_HOSTS = ("debian-11", "debian-12", "debian-13", "ubuntu-20.04", "ubuntu-22.04",
              "ubuntu-24.04", "rhel-8", "rhel-9", "local-*")


def _static(host: str, glibc: str, floor: str = "2.36", *, family: str = "glibc") -> Cell:
    """A static cell as the matrix predicts it for a runtime with glibc floor ``floor``."""
    if family != "glibc":
        verdict, reasons = "incompatible", (f"libc: the runtime is linked against glibc; {host} "
                                            f"uses {family} {glibc}",)
    elif tuple(map(int, floor.split("."))) > tuple(map(int, glibc.split("."))):
        verdict, reasons = "incompatible", (f"glibc: the runtime needs glibc {floor} (GLIBC_"
                                            f"{floor} in python/bin/python3.12); {host} has "
                                            f"{glibc}",)
    else:
        verdict, reasons = "compatible", (f"glibc {glibc} >= floor {floor}",)
    return _cell(host, "static", verdict=verdict, status="not-run", reasons=reasons,
                 facts={"libc": f"{family} {glibc}"})


def _required(cells: list[Cell], patterns: tuple[str, ...] = NOVA_HOSTS) -> list[Cell]:
    return [replace(c, required=any(fnmatchcase(c.host, p) for p in patterns)) for c in cells]


def _static_only(floor: str) -> list[Cell]:
    return _required([_static("ubuntu-20.04", "2.31", floor), _static("ubuntu-22.04", "2.35", floor),
                      _static("rhel-8", "2.28", floor), _static("rhel-9", "2.34", floor),
                      _static("alpine-3.20", "1.2.5", floor, family="musl")])


def test_static_only_matrix_fails_on_required_hosts_predicted_incompatible(tmp_path, run_isolate):
    """The issue's case: sharded, static hosts only, a runtime with the build machine's
    floor (2.36): nothing observed, and four required hosts it cannot run on."""
    cells = _static_only("2.36")
    shards = [write(tmp_path / f"s{i}.json", Results(bundle=BUNDLE, cells=tuple(cells[i - 1::2]),
                                                      shard=(i, 2), required_hosts=NOVA_HOSTS))
              for i in (1, 2)]
    res = run_isolate("report", *shards)
    assert res.code == 1, res.output
    assert "every observed cell passed" not in res.out
    head = next(line for line in res.out.splitlines() if line.startswith("FAIL"))
    assert head == ("FAIL: 4 cells need attention; nothing was observed (0 of 5 cells ran); "
                    "5 predicted incompatible; 4 required hosts predicted only")
    failing = [line.split(":")[0].strip() for line in res.out.splitlines()
               if "required host predicted incompatible" in line]
    assert sorted(failing) == ["rhel-8", "rhel-9", "ubuntu-20.04", "ubuntu-22.04"]
    assert "alpine-3.20: " not in res.out  # informative: shown, never failing
    assert "4 required hosts in this matrix: 0 observed, 4 predicted only (4 predicted " \
           "incompatible); 1 informative host" in res.out
    line = next(x for x in res.out.splitlines() if x.startswith("  alpine-3.20 "))
    assert " informative " in line
    assert " required " in next(x for x in res.out.splitlines() if x.startswith("  rhel-8 "))


def test_static_only_matrix_with_a_low_floor_passes_and_says_nothing_was_observed(
        tmp_path, run_isolate):
    r = make_results(_static_only("2.28"), baseline=None)
    r = Results(bundle=r.bundle, cells=r.cells, required_hosts=NOVA_HOSTS)
    res = run_isolate("report", write(tmp_path / "r.json", r))
    assert res.code == 0, res.output
    assert ("OK: nothing was observed (0 of 5 cells ran); 1 predicted incompatible; "
            "4 required hosts predicted only") in res.out
    assert "every observed cell passed" not in res.out
    assert "(all predicted compatible)" in res.out


def test_required_host_failing_as_predicted_fails_the_report_informative_does_not():
    cells = _required(make_cells(), ("local-*", "debian-12", "debian-11"))
    r = make_results(cells)
    r = Results(bundle=r.bundle, cells=r.cells, baseline=r.baseline,
                required_hosts=("local-*", "debian-12", "debian-11"))
    found = problems(r)
    # debian-13 failed and is not equivalent, but is informative; debian-11 is required
    assert [p.split(":")[0] for p in found] == ["debian-11"]
    assert "required host observed error (as predicted: glibc 2.31 < floor 2.34" in found[0]
    text = render_text(r)
    assert "FAIL: 1 cell needs attention; 2 passed, 1 failed as predicted, 1 failed; 2 not run" \
        " (1 predicted incompatible)" in text


def test_no_regressions_counts_failures_as_predicted():
    """Eight observed cells, one failing as predicted; no required hosts declared."""
    cells = [_cell(f"local-3.{i}", "local") for i in range(7)]
    cells.append(_cell("debian-11", "rootfs", verdict="incompatible", status="error", tests={},
                       reasons=("glibc: too old",), reason="did not start"))
    text = render_text(make_results(cells, baseline="local-3.0"))
    assert "OK: no regressions: 7 passed, 1 failed as predicted" in text


def test_renderings_mark_required_hosts(tmp_path):
    r = make_results(_static_only("2.28"), baseline=None)
    r = Results(bundle=r.bundle, cells=r.cells, required_hosts=NOVA_HOSTS)
    page = render_html(r)
    assert page.count('<span class="badge required">required</span>') == 4
    assert page.count('<span class="badge muted">informative</span>') == 1
    assert "4 required hosts in this matrix" in page and "local-*" in page
    md = render_markdown(r)
    assert md.count("**required**") == 4 and "(informative)" in md
    assert "**OK**: nothing was observed" in md
    suites = ET.fromstring(render_junit(r)).findall("testsuite")
    props = {s.get("name"): {p.get("name"): p.get("value") for p in s.iter("property")}
             for s in suites}
    assert props["rhel-8"]["required"] == "true" and props["alpine-3.20"]["required"] == "false"
    again = Results.loads(render_json(r))
    assert again.required_hosts == NOVA_HOSTS
    assert [c.required for c in again.cells] == [True, True, True, True, False]
    data = json.loads(render_json(r))
    assert data["summary"]["required"] == 4 and data["summary"]["required_predicted_only"] == 4


def test_a_cell_whose_tests_never_ran_lists_no_absent_tests() -> None:
    by = {c.host: c for c in make_results().cells}
    never_ran = by["debian-11"]  # error, no test outcome
    assert never_ran.differences.tests == ()
    assert never_ran.equivalent is False
    assert difference_text(never_ran) == "the status differs"
    ran = by["debian-13"]  # failed, with outcomes: its differing tests are listed
    assert (DIFFERING, "passed", "failed") in ran.differences.tests


def test_outcomes_from_the_exit_code_only_is_said_everywhere() -> None:
    note = "outcomes from the exit code only: isolate reads per-test outcomes from ..."
    cells = make_cells()
    cells[1] = dataclasses.replace(cells[1], observed=dataclasses.replace(
        cells[1].observed, outcomes_from="exit-code", notes=(note,)))
    r = make_results(cells)
    again = Results.loads(r.dumps()).cells[1].observed
    assert (again.outcomes_from, again.notes) == ("exit-code", (note,))
    assert "outcomes from the exit code only" in render_text(r)
    assert "outcomes from the exit code only" in render_markdown(r)
    assert "outcomes from the exit code only" in render_html(r)
    props = {p.get("name"): p.get("value") for p in ET.fromstring(render_junit(r)).iter("property")}
    assert props["observed_notes"] == note and props["outcomes_from"] == "exit-code"
