"""The fetcher's HTTP: connections kept open across requests, transient failures
retried, the environment's proxy used, credentials sent, errors named; against a real
HTTP server on the loopback."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolate.bundle.fetch import Fetcher, Target
from isolate.errors import EnvironmentProblem, InputError
from isolate.locking.backends import IndexOptions
from isolate.model.lock import Pin
from tests.conftest import build_wheel

TARGET = Target(python=(3, 12), arch="x86_64", glibc=(2, 28))


class _Index(http.server.ThreadingHTTPServer):
    """A PEP 691 index of the wheels in ``files``, counting connections and requests;
    ``fail`` maps a path to how many 503s it answers before it serves."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.connections = 0
        self.requests: list[tuple[str, str | None]] = []  # (request target, Authorization)
        self.proxy_auth: list[str | None] = []  # Proxy-Authorization of each request
        self.fail: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Index

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/octet-stream") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get("Authorization")))
            self.server.proxy_auth.append(self.headers.get("Proxy-Authorization"))
            left = self.server.fail.get(self.path, 0)
            if left:
                self.server.fail[self.path] = left - 1
        path = self.path.split("://", 1)[-1]  # a proxy gets the absolute form
        path = "/" + path.split("/", 1)[1] if "://" in self.path else path
        if left:
            self._send(503, b"busy")
        elif path.startswith("/moved/"):  # /moved/<where>/<path>: a redirect to <where>
            _, _, where, rest = path.split("/", 3)
            self.send_response(301)
            self.send_header("Location", f"http://{where}/{rest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path.startswith("/simple/"):
            name = path.split("/")[2]
            files = [{"filename": f, "url": f"/files/{f}",
                      "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
                     for f, data in self.server.files.items() if f.startswith(name + "-")]
            if not files:
                self._send(404, b"no such project")
                return
            self._send(200, json.dumps({"meta": {"api-version": "1.0"}, "name": name,
                                        "files": files}).encode(),
                       "application/vnd.pypi.simple.v1+json")
        elif path.startswith("/files/") and path[7:] in self.server.files:
            self._send(200, self.server.files[path[7:]])
        else:
            self._send(404, b"not found")


@pytest.fixture
def index(tmp_path: Path) -> Iterator[_Index]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    files = {}
    for i in range(6):
        w = build_wheel(wheels, f"pkg{i}", "1.0")
        files[w.name] = w.read_bytes()
    server = _Index(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _pins(index: _Index) -> list[Pin]:
    return [Pin(name=f"pkg{i}", version="1.0", text=f"pkg{i}==1.0", hashes=(
        "sha256:" + hashlib.sha256(index.files[f"pkg{i}-1.0-py3-none-any.whl"]).hexdigest(),))
        for i in range(6)]


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
                "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_downloads_reuse_connections_and_check_every_hash(index: _Index, tmp_path: Path) -> None:
    fetcher = Fetcher(IndexOptions(index_url=index.url + "/simple"), tmp_path / "cache", jobs=2)
    arts = fetcher.fetch(_pins(index), TARGET)
    assert [a.path.read_bytes() for a in arts] == [
        index.files[f"pkg{i}-1.0-py3-none-any.whl"] for i in range(6)]
    assert len(index.requests) == 12  # a page and a file per pin
    assert index.connections <= 2, "each request opened a connection of its own"


def test_a_busy_server_is_asked_again(index: _Index, tmp_path: Path) -> None:
    index.fail["/simple/pkg1/"] = 2
    index.fail["/files/pkg2-1.0-py3-none-any.whl"] = 2
    fetcher = Fetcher(IndexOptions(index_url=index.url + "/simple"), tmp_path / "cache")
    assert len(fetcher.fetch(_pins(index), TARGET)) == 6
    assert [p for p, _a in index.requests].count("/simple/pkg1/") == 3


def test_a_server_that_stays_busy_is_an_error_that_names_it(index: _Index,
                                                             tmp_path: Path) -> None:
    index.fail["/files/pkg3-1.0-py3-none-any.whl"] = 100
    fetcher = Fetcher(IndexOptions(index_url=index.url + "/simple"), tmp_path / "cache")
    with pytest.raises(EnvironmentProblem, match=r"cannot download pkg3-1.0-py3-none-any.whl "
                                                 r"for pkg3==1.0: HTTP 503"):
        fetcher.fetch(_pins(index), TARGET)
    assert not list((tmp_path / "cache" / "artifacts").rglob("pkg3*"))


def test_a_missing_project_is_no_artifact(index: _Index, tmp_path: Path) -> None:
    fetcher = Fetcher(IndexOptions(index_url=index.url + "/simple"), tmp_path / "cache")
    with pytest.raises(InputError, match=r"no wheel for nothere==1\.0 fits the target"):
        fetcher.fetch([Pin(name="nothere", version="1.0", hashes=(), text="")], TARGET)


def test_the_environments_proxy_is_used_and_credentials_are_sent(
        index: _Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", index.url)  # the index serves as its own proxy
    fetcher = Fetcher(IndexOptions(index_url="http://ci:t0ken@pkgs.invalid/simple"),
                      tmp_path / "cache")
    arts = fetcher.fetch(_pins(index)[:2], TARGET)
    assert len(arts) == 2
    targets = [p for p, _a in index.requests]
    assert "http://pkgs.invalid/simple/pkg0/" in targets
    assert all(t.startswith("http://pkgs.invalid/") for t in targets)
    assert all(a is not None and a.startswith("Basic ") for _p, a in index.requests)
    monkeypatch.setenv("no_proxy", "pkgs.invalid")
    bypass = Fetcher(IndexOptions(index_url="http://pkgs.invalid/simple"), tmp_path / "c2")
    with pytest.raises(EnvironmentProblem, match=r"package index http://pkgs\.invalid/simple/"
                                                 r"pkg0/ is unreachable"):
        bypass.fetch(_pins(index)[:1], TARGET)


def test_redirects_keep_the_credentials_on_the_index_host_only(index: _Index,
                                                               tmp_path: Path) -> None:
    port = index.server_address[1]
    here, other = f"127.0.0.1:{port}", f"localhost:{port}"  # one server, two hosts
    fetcher = Fetcher(IndexOptions(index_url=f"http://ci:t0ken@{here}/moved/{here}/simple"),
                      tmp_path / "cache")
    assert len(fetcher.fetch(_pins(index)[:1], TARGET)) == 1
    page = [a for p, a in index.requests if p == "/simple/pkg0/"]
    assert page and page[0] is not None and page[0].startswith("Basic ")
    index.requests.clear()
    away = Fetcher(IndexOptions(index_url=f"http://ci:t0ken@{here}/moved/{other}/simple"),
                   tmp_path / "cache2")
    assert len(away.fetch(_pins(index)[1:2], TARGET)) == 1
    assert [a for p, a in index.requests if p == "/simple/pkg1/"] == [None]


def test_a_proxy_without_a_scheme_and_with_credentials_works_as_with_urllib(
        index: _Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", f"proxyuser:pr%40xy@127.0.0.1:{index.server_address[1]}")
    fetcher = Fetcher(IndexOptions(index_url="http://pkgs.invalid/simple"), tmp_path / "cache")
    assert len(fetcher.fetch(_pins(index)[:1], TARGET)) == 1
    assert index.proxy_auth and all(a == "Basic " + base64.b64encode(
        b"proxyuser:pr@xy").decode() for a in index.proxy_auth)
