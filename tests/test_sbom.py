"""`isolate sbom`: a CycloneDX 1.6 JSON SBOM of the ``built`` bundle, through the real CLI.

It validates against the CycloneDX schema the library ships (strict validator), lists every
distribution, the interpreter and every vendored library with purls and hashes, and is
byte-identical across runs and across the bundle's directory, archive and manifest.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import bundle_dir, invoke
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.sbom import NAMESPACE, pypi_purl_name


@pytest.fixture(scope="module")
def sbom_file(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sbom") / "bundle.cdx.json"
    result = invoke(["sbom", bundle_dir(built), "-o", out])
    assert result.code == 0, result.output
    assert result.out.startswith("wrote CycloneDX 1.6 SBOM of ")
    return out


@pytest.fixture(scope="module")
def doc(sbom_file: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sbom_file.read_text())
    return data


@pytest.fixture(scope="module")
def manifest(built: Path) -> Manifest:
    return Manifest.loads((bundle_dir(built) / MANIFEST_NAME).read_text())


def by_ref(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in doc["components"]}


def sha256_of(component: dict[str, Any]) -> str:
    (h,) = component["hashes"]
    assert h["alg"] == "SHA-256"
    return str(h["content"])


def props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", ())}


def test_it_validates_against_the_cyclonedx_schema(sbom_file: Path, doc: dict[str, Any]) -> None:
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom_file.read_text())
    assert error is None, error


def test_every_distribution_with_purl_and_hash(doc: dict[str, Any], manifest: Manifest) -> None:
    assert manifest.distributions, "the test bundle installs distributions"
    comps = by_ref(doc)
    for d in manifest.distributions:
        purl = f"pkg:pypi/{pypi_purl_name(d.name)}@{d.version}"
        c = comps[purl]
        assert (c["type"], c["name"], c["version"], c["purl"]) == ("library", d.name,
                                                                   d.version, purl)
        assert sha256_of(c) == d.sha256
        assert props(c)["isolate:filename"] == d.filename
    pypi = [c for c in doc["components"] if c.get("purl", "").startswith("pkg:pypi/")]
    assert len(pypi) == len(manifest.distributions)


def test_the_interpreter_and_vendored_libraries(doc: dict[str, Any], manifest: Manifest) -> None:
    files = {e.path: e for e in manifest.files}
    comps = by_ref(doc)
    version = manifest.interpreter.version
    cpython = comps[f"pkg:generic/cpython@{version}"]
    assert (cpython["type"], cpython["name"], cpython["version"]) == ("platform", "cpython",
                                                                     version)
    assert sha256_of(cpython) == files[manifest.interpreter.executable].sha256
    vendored = [c for c in doc["components"] if "isolate:origin" in props(c)]
    assert len(vendored) == len(manifest.elf.vendored)
    for v in manifest.elf.vendored:
        c = comps[f"isolate:vendored:{v.path}"]
        assert (c["type"], c["name"]) == ("library", v.soname)
        assert props(c)["isolate:origin"] == v.origin and props(c)["isolate:path"] == v.path
        assert sha256_of(c) == files[v.path].sha256
    assert len(doc["components"]) == len(manifest.distributions) + 1 + len(manifest.elf.vendored)


def test_metadata_names_the_bundle_deterministically(doc: dict[str, Any], manifest: Manifest,
                                                     built: Path) -> None:
    meta = doc["metadata"]
    assert (meta["component"]["name"], meta["component"]["version"]) == (manifest.name,
                                                                         manifest.version)
    digest = hashlib.sha256((bundle_dir(built) / MANIFEST_NAME).read_bytes()).hexdigest()
    assert props(meta["component"])["isolate:manifest_sha256"] == digest
    assert doc["serialNumber"] == uuid.uuid5(NAMESPACE, digest).urn
    (root_deps,) = [d for d in doc["dependencies"] if d["ref"] == manifest.name]
    assert sorted(root_deps["dependsOn"]) == sorted(c["bom-ref"] for c in doc["components"])


def test_byte_identical_across_runs_and_inputs(built: Path, sbom_file: Path,
                                               tmp_path: Path) -> None:
    again = tmp_path / "again.json"
    assert invoke(["sbom", bundle_dir(built), "-o", again]).code == 0
    assert again.read_bytes() == sbom_file.read_bytes()
    stdout = invoke(["sbom", bundle_dir(built) / MANIFEST_NAME])
    assert stdout.code == 0 and stdout.out.encode() == sbom_file.read_bytes()
    from_archive = tmp_path / "archive.json"
    archive = built / f"{bundle_dir(built).name}.tar.gz"
    assert invoke(["sbom", archive, "-o", from_archive]).code == 0
    assert from_archive.read_bytes() == sbom_file.read_bytes()


@pytest.mark.parametrize(("epoch", "stamp"), [(None, "1980-01-01T00:00:00+00:00"),
                                              ("1700000000", "2023-11-14T22:13:20+00:00")])
def test_the_timestamp_follows_source_date_epoch(built: Path, monkeypatch: pytest.MonkeyPatch,
                                                 epoch: str | None, stamp: str) -> None:
    if epoch is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    result = invoke(["sbom", bundle_dir(built)])
    assert json.loads(result.out)["metadata"]["timestamp"] == stamp


@pytest.mark.parametrize("what", ["missing", "empty dir", "text file", "bad manifest"])
def test_not_a_bundle_is_a_usage_error(tmp_path: Path, what: str) -> None:
    path = tmp_path / "thing"
    if what == "empty dir":
        path.mkdir()
    elif what == "text file":
        path = tmp_path / "thing.tar.zst"
        path.write_text("not an archive\n")
    elif what == "bad manifest":
        path.mkdir()
        (path / MANIFEST_NAME).write_text('{"schema": "isolate.manifest/1"}')
    out = tmp_path / "sbom.json"
    result = invoke(["sbom", path, "-o", out])
    assert result.code == 2, result.output
    assert result.err.startswith("error: ") and "\nhint: " in result.err
    assert "Traceback" not in result.err and not out.exists()
