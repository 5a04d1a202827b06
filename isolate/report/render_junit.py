"""The results as JUnit XML for CI systems: one ``<testsuite>`` per cell.

A suite is named by the host id and carries the cell's facts as ``<properties>`` (host,
executor, predicted verdict, distro, libc, glibc floor, ...). Each test id becomes a
``<testcase>`` (classname and name split at the last dot outside a ``[parameter]``) with
``<failure>``, ``<error>`` or ``<skipped>``. A cell whose status is error, not-run, or
failed without any failing test, gets one synthetic test case carrying the reason, so
that CI never shows it as a silent pass.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import Any

from isolate.model.results import Cell, Results
from isolate.report import equivalence_word, not_run_reason, printable, status_word

SYNTHETIC_CLASS = "isolate.matrix"


def split_test_id(test: str) -> tuple[str, str]:
    """``a.b.C.test_x[1.5]`` -> (``a.b.C``, ``test_x[1.5]``); no dot: ("", id)."""
    head = test.split("[", 1)[0]
    dot = head.rfind(".")
    if dot <= 0:
        return "", test
    return test[:dot], test[dot + 1:]


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for k in sorted(value):
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), value[k])
    elif isinstance(value, list | tuple):
        yield prefix, ", ".join(str(v) for v in value)
    else:
        yield prefix, "" if value is None else str(value)


def _fact(cell: Cell, key: str) -> str:
    """A host fact from the host profile, else from the observed host fingerprint."""
    for source in (cell.host_facts, cell.observed.host):
        value = source.get(key)
        if isinstance(value, Mapping):
            return " ".join(str(value[k]) for k in ("family", "version") if k in value) or str(value)
        if value:
            return str(value)
    return ""


def _properties(cell: Cell, results: Results) -> list[tuple[str, str]]:
    bundle = results.bundle
    distro = " ".join(x for x in (_fact(cell, "distro"), _fact(cell, "release")) if x)
    props = [
        ("host", cell.host), ("host_name", cell.host_name), ("executor", cell.executor),
        ("required", "true" if cell.required else "false"),
        ("predicted_verdict", cell.predicted.verdict),
        ("predicted_reasons", "; ".join(cell.predicted.reasons)),
        ("observed_status", cell.observed.status), ("equivalent", equivalence_word(cell)),
        ("baseline", results.baseline or ""),
        ("distro", distro), ("libc", _fact(cell, "libc")), ("arch", _fact(cell, "arch")),
        ("bundle", str(bundle.get("name", ""))),
        ("glibc_floor", str(bundle.get("glibc_floor") or "none")),
        ("manifest_sha256", str(bundle.get("manifest_sha256", ""))),
    ]
    if cell.predicted.warnings:
        props.append(("predicted_warnings", "; ".join(cell.predicted.warnings)))
    for v in cell.predicted.host_libraries:
        props.append((f"host_library {v.soname}", v.status + (
            f" ({v.describe()})" if v.status != "absent" else "")))
    if cell.observed.reason:
        props.append(("observed_reason", cell.observed.reason))
    for h in cell.observed.host_libraries:
        props.append((f"observed_host_library {h.soname}", h.describe()))
    if cell.observed.notes:
        props.append(("observed_notes", "; ".join(cell.observed.notes)))
    if cell.observed.outcomes_from:
        props.append(("outcomes_from", cell.observed.outcomes_from))
    props += [(f"host.{k}", v) for k, v in _flatten("", cell.host_facts)]
    props += [(f"host_fingerprint.{k}", v) for k, v in _flatten("", cell.observed.host)]
    return props


def _suite(parent: ET.Element, cell: Cell, results: Results) -> None:
    obs = cell.observed
    suite = ET.SubElement(parent, "testsuite", name=printable(cell.host))
    props = ET.SubElement(suite, "properties")
    for name, value in _properties(cell, results):
        ET.SubElement(props, "property", name=printable(name), value=printable(value))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    tail = printable(obs.output_tail)
    for test, outcome in sorted(obs.tests.items()):
        classname, name = split_test_id(test)
        case = ET.SubElement(suite, "testcase", classname=printable(classname or cell.host),
                             name=printable(name))
        counts["tests"] += 1
        if outcome == "failed":
            ET.SubElement(case, "failure", message="failed", type="failed")
            counts["failures"] += 1
        elif outcome == "error":
            ET.SubElement(case, "error", message="error", type="error")
            counts["errors"] += 1
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", message="skipped")
            counts["skipped"] += 1
        elif outcome != "passed":
            ET.SubElement(case, "error", message=printable(f"unknown outcome {outcome!r}"))
            counts["errors"] += 1
    synthetic = None
    if obs.status == "not-run":
        synthetic = ET.Element("skipped", message=printable(f"not run: {not_run_reason(cell)}"))
        counts["skipped"] += 1
    elif obs.status == "error":
        synthetic = ET.Element("error", message=printable(obs.reason or "the cell failed to run"),
                               type="cell-error")
        synthetic.text = tail
        counts["errors"] += 1
    elif obs.status == "failed" and not counts["failures"] + counts["errors"]:
        synthetic = ET.Element("failure", message=printable(obs.reason or "the cell failed"),
                               type="cell-failed")
        synthetic.text = tail
        counts["failures"] += 1
    if synthetic is not None:
        case = ET.SubElement(suite, "testcase", classname=SYNTHETIC_CLASS,
                             name=printable(f"{cell.host} ({status_word(cell)})"))
        case.append(synthetic)
        counts["tests"] += 1
    if tail and obs.status in ("failed", "error"):
        ET.SubElement(suite, "system-out").text = tail
    for key, n in counts.items():
        suite.set(key, str(n))
    suite.set("time", f"{obs.seconds:.3f}")


def render_junit(results: Results) -> str:
    bundle = printable(str(results.bundle.get("name", "")))
    root = ET.Element("testsuites", name=f"isolate matrix: {bundle}")
    for cell in results.cells:
        _suite(root, cell, results)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    root.set("time", f"{sum(c.observed.seconds for c in results.cells):.3f}")
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
