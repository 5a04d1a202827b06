"""Offline builds: `isolate fetch` fills a wheelhouse, `isolate bundle --offline` uses only it.

The offline build runs as a subprocess in a network namespace without network
(``unshare -n``; ``unshare -rn`` without root) with an empty cache, so nothing can come
from the network or the cache; its archives must equal those of an online build.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from isolate.model.manifest import MANIFEST_NAME, Manifest
from tests.conftest import REPO, TARGET, Result, bundle_dir, index

SDIST_NAME = "tinysdist"


@cache
def netns() -> tuple[str, ...]:
    """A prefix that runs a command without network, or () when none is possible here."""
    if shutil.which("unshare") is None:
        return ()
    for argv in (("unshare", "-n"), ("unshare", "-rn")):
        done = subprocess.run([*argv, "true"], capture_output=True, timeout=30)
        if done.returncode == 0:
            return argv
    return ()


def run_offline(args: list[str | Path], cache_dir: Path) -> subprocess.CompletedProcess[str]:
    """``python -m isolate ARGS`` without network (when possible) and with ``cache_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["ISOLATE_CACHE_DIR"] = str(cache_dir)
    env["PYTHONPATH"] = str(REPO)
    # Where no network namespace can be made, a dead proxy catches any HTTP attempt.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[var] = "http://127.0.0.1:9"
    return subprocess.run([*netns(), sys.executable, "-m", "isolate", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)


def archives(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar.*"))
            if p.name.endswith((".tar.gz", ".tar.zst"))}


def explain(a: bytes, b: bytes, name: str) -> str:
    """The first differing tar members of two archives (for the assertion message)."""
    def members(data: bytes) -> dict[str, tuple[tuple[object, ...], bytes]]:
        if name.endswith(".zst"):
            import zstandard

            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data),
                                                             read_across_frames=True).read()
        else:
            raw = gzip.decompress(data)
        out = {}
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            for m in tf:
                f = tf.extractfile(m) if m.isfile() else None
                out[m.name] = ((m.type, m.mode, m.uid, m.gid, m.mtime, m.linkname),
                               f.read() if f else b"")
        return out

    ma, mb = members(a), members(b)
    diffs = [f"only in the first: {n}" for n in sorted(ma.keys() - mb.keys())]
    diffs += [f"only in the second: {n}" for n in sorted(mb.keys() - ma.keys())]
    diffs += [f"differs: {n} {ma[n][0]} vs {mb[n][0]}" for n in sorted(ma.keys() & mb.keys())
              if ma[n] != mb[n]]
    return f"{name} differs:\n" + "\n".join(diffs[:20] or ["same members: compression differs"])


def assert_same_archives(first: Path, second: Path) -> None:
    a, b = archives(first), archives(second)
    assert a and a.keys() == b.keys(), (sorted(a), sorted(b))
    for name in a:
        assert a[name] == b[name], explain(a[name], b[name], name)


def test_network_namespace_has_no_network(tmp_path: Path) -> None:
    if not netns():
        pytest.skip("no network namespace here (unshare -n / -rn): the offline tests rely on "
                    "--offline and a dead proxy alone")
    done = subprocess.run(
        [*netns(), sys.executable, "-c",
         "import socket; socket.create_connection(('pypi.org', 443), timeout=5)"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0


@pytest.fixture(scope="module")
def app_wheelhouse(app_ws: Path, app_wheels: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import invoke

    wh = tmp_path_factory.mktemp("wheelhouse-fetched") / "W"
    r = invoke(["--root", app_ws, "fetch", "app", "--wheelhouse", wh,
                *index(app_wheels)])
    assert r.code == 0, r.output
    assert "5 wheels, 0 sdists" in r.out and "5 files added" in r.out, r.out
    return wh


def test_fetch_is_idempotent_and_complete(app_wheelhouse: Path, app_ws: Path,
                                          run_isolate: Callable[..., Result]) -> None:
    names = sorted(p.name for p in app_wheelhouse.iterdir() if p.is_file())
    # runtime lock (alpha, beta, tool) and tests lock (gamma, delta)
    assert [n.split("-")[0] for n in names] == ["alpha", "beta", "delta", "gamma", "tool"]
    lock = (app_ws / "constraints" / "app.txt").read_text() + \
        (app_ws / "constraints" / "app-tests.txt").read_text()
    from isolate.fsutil import sha256_file as sha256_of

    for n in names:
        assert sha256_of(app_wheelhouse / n) in lock, n
    # A second run needs no source but the wheelhouse itself, and changes nothing.
    r = run_isolate("--root", app_ws, "fetch", "app", "--wheelhouse", app_wheelhouse,
                    "--no-index")
    assert r.code == 0, r.output
    assert "0 files added" in r.out and "5 already there" in r.out, r.out
    assert not [p for p in app_wheelhouse.rglob(".*")]  # no temporary files left


def test_offline_bundle_in_a_netns_equals_the_online_one(
        built: Path, app_ws: Path, app_wheelhouse: Path, tmp_path: Path) -> None:
    empty_cache = tmp_path / "cache"
    empty_cache.mkdir()
    out = tmp_path / "out"
    done = run_offline(["--root", app_ws, "bundle", "app", "--wheelhouse", app_wheelhouse,
                        "--offline", "-o", out, "--format", "tar.gz,tar.zst", "-q"], empty_cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_archives(built, out)


def test_offline_with_an_incomplete_wheelhouse_says_run_fetch(
        app_ws: Path, app_wheelhouse: Path, tmp_path: Path,
        run_isolate: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOLATE_CACHE_DIR", str(tmp_path / "empty-cache"))
    wh = tmp_path / "W"
    shutil.copytree(app_wheelhouse, wh)
    (beta,) = wh.glob("beta-*.whl")
    beta.unlink()
    out = tmp_path / "out"
    r = run_isolate("--root", app_ws, "bundle", "app", "--wheelhouse", wh, "--offline",
                    "-o", out, "-q")
    assert r.code == 2, r.output
    assert "beta==2.0" in r.err and "isolate fetch app --wheelhouse" in r.err, r.err
    assert "Traceback" not in r.output
    assert [p.name for p in out.iterdir()] == [".isolate-build.lock"]
    # and without any wheelhouse at all
    r = run_isolate("--root", app_ws, "bundle", "app", "--wheelhouse", tmp_path / "none",
                    "--offline", "-o", out, "-q")
    assert r.code == 2 and "does not exist" in r.err and "isolate fetch app" in r.err, r.err


def test_offline_excludes_an_index(app_ws: Path, tmp_path: Path,
                                   run_isolate: Callable[..., Result]) -> None:
    r = run_isolate("--root", app_ws, "bundle", "app", "--offline", "--index-url",
                    "http://127.0.0.1:9/simple", "-o", tmp_path / "out")
    assert r.code == 2 and "--offline and --index-url" in r.err, r.output


def test_unreachable_index_is_a_clear_error(app_ws: Path, tmp_path: Path,
                                            run_isolate: Callable[..., Result],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOLATE_CACHE_DIR", str(tmp_path / "empty-cache"))
    dead = "http://127.0.0.1:9/simple"
    out = tmp_path / "out"
    r = run_isolate("--root", app_ws, "bundle", "app", "--index-url", dead, "-o", out, "-q")
    assert r.code == 3, r.output
    assert f"package index {dead}/" in r.err and "unreachable" in r.err, r.err
    assert "isolate fetch" in r.err and "Traceback" not in r.output
    assert [p.name for p in out.iterdir()] == [".isolate-build.lock"]  # nothing published
    r = run_isolate("--root", app_ws, "fetch", "app", "--index-url", dead, "--wheelhouse",
                    tmp_path / "W", "-q")
    assert r.code == 3 and f"package index {dead}/" in r.err, r.output
    assert not [p for p in (tmp_path / "W").rglob("*") if p.is_file()]


# -- a package that only has an sdist --------------------------------------------------

SDIST_FILES = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
                      'build-backend = "setuptools.build_meta"\n',
    "setup.cfg": f"[metadata]\nname = {SDIST_NAME}\nversion = 1.0\n\n[options]\n"
                 f"packages = {SDIST_NAME}\n",
    f"{SDIST_NAME}/__init__.py": 'VALUE = "built from an sdist"\n',
    "PKG-INFO": f"Metadata-Version: 2.1\nName: {SDIST_NAME}\nVersion: 1.0\n",
}


def make_sdist(directory: Path) -> Path:
    """``tinysdist-1.0.tar.gz``, byte for byte the same on every run."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for rel, text in sorted(SDIST_FILES.items()):
            data = text.encode()
            ti = tarfile.TarInfo(f"{SDIST_NAME}-1.0/{rel}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1577836800
            tf.addfile(ti, io.BytesIO(data))
    path = directory / f"{SDIST_NAME}-1.0.tar.gz"
    with open(path, "wb") as f, gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue())
    return path


def setuptools_wheel(directory: Path) -> Path:
    """The build dependency, from virtualenv's own seed wheels: no index needed."""
    from virtualenv.seed.wheels.embed import get_embed_wheel

    wheel = get_embed_wheel("setuptools", "3.12")
    if wheel is None:
        pytest.skip("virtualenv ships no setuptools wheel to build the sdist with")
    return Path(shutil.copy(wheel.path, directory))


def test_sdist_only_package_is_prebuilt_by_fetch_and_used_offline(
        app_wheels: Path, target_python: str, tmp_path: Path, test_cache_dir: Path,
        run_isolate: Callable[..., Result]) -> None:
    from isolate.fsutil import sha256_file as sha256_of

    links = tmp_path / "links"
    shutil.copytree(app_wheels, links)
    sdist = make_sdist(links)
    setuptools_wheel(links)
    sha = sha256_of(sdist)
    ws = tmp_path / "ws"
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "profiles" / "runtimes" / "sd.toml").write_text(
        f'name = "sd"\npython = "{target_python}"\nrequirements = ["tool", "{SDIST_NAME}"]\n'
        + TARGET)
    r = run_isolate("--root", ws, "lock", "sd", *index(links))
    assert r.code == 0, r.output
    assert sha in (ws / "constraints" / "sd.txt").read_text()

    # fetch builds the wheel (not taken from an earlier run's cache) into the wheelhouse
    shutil.rmtree(test_cache_dir / "built" / sha, ignore_errors=True)
    wh = tmp_path / "W"
    r = run_isolate("--root", ws, "fetch", "sd", "--wheelhouse", wh, *index(links))
    assert r.code == 0, r.output
    assert "1 sdists, 1 wheels built from sdists" in r.out, r.out
    (prebuilt,) = (wh / "built" / sha).glob("*.whl")
    assert prebuilt.name == f"{SDIST_NAME}-1.0-py3-none-any.whl"
    assert (wh / sdist.name).exists()

    # online, building the wheel again: the same wheel bytes (SOURCE_DATE_EPOCH)
    shutil.rmtree(test_cache_dir / "built" / sha, ignore_errors=True)
    online = tmp_path / "online"
    r = run_isolate("--root", ws, "bundle", "sd", "-o", online, "--format", "dir,tar.zst",
                    "-q", *index(links))
    assert r.code == 0, r.output
    m = Manifest.loads((bundle_dir(online) / MANIFEST_NAME).read_text())
    (dist,) = [d for d in m.distributions if d.name == SDIST_NAME]
    assert dist.built_from_sdist == sha and dist.filename == prebuilt.name
    assert sha256_of(next((test_cache_dir / "built" / sha).glob("*.whl"))) == \
        sha256_of(prebuilt)

    # offline, without network, with an empty cache: the prebuilt wheel, same archive
    offline = tmp_path / "offline"
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    done = run_offline(["--root", ws, "bundle", "sd", "--wheelhouse", wh, "--offline",
                        "-o", offline, "--format", "tar.zst", "-q"], empty)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_archives(online, offline)
    assert not (empty / "tools").exists()  # no tool environment was made: nothing built

    # without its prebuilt wheel, offline is an error naming the package
    shutil.rmtree(wh / "built" / sha)
    done = run_offline(["--root", ws, "bundle", "sd", "--wheelhouse", wh, "--offline",
                        "-o", tmp_path / "out3", "-q"], tmp_path / "empty-cache-2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{SDIST_NAME}==1.0" in done.stderr and "isolate fetch sd --wheelhouse" in \
        done.stderr, done.stderr
    assert "Traceback" not in done.stderr
