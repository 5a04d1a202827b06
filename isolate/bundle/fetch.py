"""Fetch the artifacts of a lock: the best wheel for the target, else the sdist.

Artifacts come from a package index (PEP 691 JSON, or PEP 503 HTML) and/or local
``--find-links`` directories, and are cached by sha256 under the cache folder. Every
file is checked against the lock's hashes before it is used; a mismatch names the
package, the expected hashes and the actual one.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import ssl
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import urllib3
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from isolate.credentials import redact_url, split_credentials
from isolate.errors import EnvironmentProblem, InputError
from isolate.locking.backends import IndexOptions
from isolate.model.lock import Pin

CHUNK = 1 << 20
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    python: tuple[int, int]
    arch: str
    glibc: tuple[int, int]

    def platforms(self) -> list[str]:
        """manylinux tags a host with this glibc accepts, most specific first."""
        out = [f"manylinux_{self.glibc[0]}_{n}_{self.arch}" for n in range(self.glibc[1], 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        for n, alias in legacy.items():
            if (self.glibc >= (2, n) and self.arch in ("x86_64", "i686")) or (
                    alias == "manylinux2014" and self.glibc >= (2, 17)):
                out.append(f"{alias}_{self.arch}")
        return out

    def tags(self) -> list[Tag]:
        plats = self.platforms()
        abi = f"cp{self.python[0]}{self.python[1]}"
        return [*cpython_tags(self.python, abis=[abi], platforms=plats),
                *compatible_tags(self.python, interpreter=abi, platforms=plats)]


@dataclass(frozen=True, kw_only=True, slots=True)
class Link:
    filename: str
    url: str
    sha256: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Artifact:
    pin: Pin
    path: Path  # in the cache
    sha256: str
    is_wheel: bool


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def _link(url: str) -> Link:
    parsed = urllib.parse.urlsplit(url)
    frag = dict(p.split("=", 1) for p in parsed.fragment.split("&") if "=" in p)
    filename = urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])
    return Link(filename=filename, url=urllib.parse.urlunsplit(parsed._replace(fragment="")),
                sha256=frag.get("sha256"))


class Fetcher:
    def __init__(self, index: IndexOptions, cache: Path, *, timeout: float = 60.0,
                 jobs: int = 8, offline_hint: str | None = None):
        """``offline_hint``: offline (no index may be used; ``index.index_url`` must be
        None), and what to tell the user when an artifact is missing."""
        if offline_hint is not None and index.index_url is not None:
            raise ValueError("an offline Fetcher takes no index")
        self._index = index
        self._cache = cache
        self._timeout = timeout
        self._jobs = jobs
        self._offline_hint = offline_hint
        self._tls_context: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()
        self._http: _Http | None = None
        self._http_lock = threading.Lock()

    # -- requests -------------------------------------------------------------------
    def _headers(self, url: str, accept: str | None = None) -> tuple[str, dict[str, str]]:
        """The URL without its credentials, and the request's headers: the credentials go
        in an Authorization header (from the URL, netrc, or the index URL's, for files on
        the index's host)."""
        bare, auth = split_credentials(url)
        if auth is None and self._index.index_url is not None:
            index_bare, index_auth = split_credentials(self._index.index_url)
            same_host = (urllib.parse.urlsplit(index_bare).netloc
                         == urllib.parse.urlsplit(bare).netloc)
            auth = index_auth if same_host else None
        headers = {"Accept": accept} if accept else {}
        if auth is not None:
            headers["Authorization"] = auth
        return bare, headers

    def _get(self, url: str, accept: str | None = None, *, stream: bool) -> tuple[Any, str]:
        """A GET through the pooled connections (``_Http``): urllib3's response, and the
        URL it came from. Redirects are followed here, each hop with its own headers:
        the index's credentials go to the index's host (http or https) and nowhere
        else."""
        with self._http_lock:
            if self._http is None:
                self._http = _Http(self._tls(), timeout=self._timeout, size=self._jobs)
            http = self._http
        for _hop in range(MAX_REDIRECTS + 1):
            bare, headers = self._headers(url, accept)
            resp = http.get(bare, headers, stream=stream)
            location = resp.get_redirect_location() if resp.status in REDIRECTS else None
            if not location:
                return resp, bare
            resp.drain_conn()
            resp.release_conn()
            url = urllib.parse.urljoin(bare, location)
        raise EnvironmentProblem(f"{redact_url(url)}: more than {MAX_REDIRECTS} redirects",
                                 hint="check --index-url")

    def _tls(self) -> ssl.SSLContext:
        """One TLS context for all requests: making one loads the CA certificates, about
        50 ms of CPU, which urllib would otherwise spend on every connection."""
        with self._tls_lock:
            if self._tls_context is None:
                self._tls_context = ssl.create_default_context(cafile=self._index.cert)
            return self._tls_context

    # -- listing --------------------------------------------------------------------
    def _open(self, url: str, accept: str | None = None) -> tuple[bytes, str, str]:
        shown = redact_url(url)
        try:
            resp, final = self._get(url, accept, stream=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise EnvironmentProblem(
                f"package index {shown} is unreachable: {_reason(exc)}",
                hint="check --index-url and your network, or build offline: `isolate fetch "
                     "RUNTIME --wheelhouse DIR` where there is network, then `isolate bundle "
                     "RUNTIME --wheelhouse DIR --offline`",
            ) from exc
        if resp.status == 404:
            return b"", "", final
        if resp.status >= 400:
            hint = "check --index-url and your network"
            if resp.status in (401, 403):
                hint = ("the index wants credentials: put them in ~/.netrc (or $NETRC), or "
                        "in the URL (https://USER:TOKEN@host/simple); they are never printed")
            raise EnvironmentProblem(f"package index {shown}: HTTP {resp.status} {resp.reason}",
                                     hint=hint)
        return resp.data, resp.headers.get("Content-Type", ""), final

    def links(self, name: str) -> list[Link]:
        out: list[Link] = []
        for d in self._index.find_links:
            base = Path(d)
            if base.is_dir():
                out += [Link(filename=p.name, url=p.resolve().as_uri(), sha256=None)
                        for p in sorted(base.iterdir()) if p.is_file()]
        if self._index.index_url is None:
            return out
        base_url = self._index.index_url.rstrip("/") + f"/{canonicalize_name(name)}/"
        if base_url.startswith("file:"):
            page = Path(urllib.request.url2pathname(urllib.parse.urlsplit(base_url).path))
            index_html = page / "index.html"
            if not index_html.exists():
                return out
            body, ctype, url = index_html.read_bytes(), "text/html", index_html.as_uri()
        else:
            body, ctype, url = self._open(
                base_url, "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
        if not body:
            return out
        if "json" in ctype:
            data = json.loads(body)
            for f in data.get("files", []):
                out.append(Link(filename=f["filename"], url=urllib.parse.urljoin(url, f["url"]),
                                sha256=f.get("hashes", {}).get("sha256")))
        else:
            parser = _Anchors()
            parser.feed(body.decode("utf-8", "replace"))
            out += [_link(urllib.parse.urljoin(url, href)) for href in parser.links]
        return out

    # -- choosing -------------------------------------------------------------------
    @staticmethod
    def choose(pin: Pin, links: Iterable[Link], target: Target) -> tuple[Link | None, Link | None]:
        """(best wheel for the target, sdist) among the links of ``pin``'s version."""
        rank = {t: i for i, t in enumerate(target.tags())}
        allowed = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
        best: tuple[int, Link] | None = None
        sdist: Link | None = None
        for link in links:
            if link.sha256 is not None and allowed and link.sha256 not in allowed:
                continue
            try:
                if link.filename.endswith(".whl"):
                    name, version, _b, tags = parse_wheel_filename(link.filename)
                    if canonicalize_name(name) != pin.name or str(version) != pin.version:
                        continue
                    score = min((rank[t] for t in tags if t in rank), default=None)
                    if score is not None and (best is None or score < best[0]):
                        best = (score, link)
                elif link.filename.endswith((".tar.gz", ".zip")):
                    name, version = parse_sdist_filename(link.filename)
                    if canonicalize_name(name) == pin.name and str(version) == pin.version:
                        sdist = link
            except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
                continue
        return (best[1] if best else None), sdist

    # -- downloading ----------------------------------------------------------------
    def _cached(self, sha256: str, filename: str) -> Path:
        return self._cache / "artifacts" / sha256[:2] / sha256 / filename

    def _download(self, pin: Pin, link: Link) -> Artifact:
        allowed = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
        if link.sha256 and link.sha256 in allowed:
            cached = self._cached(link.sha256, link.filename)
            if cached.exists():
                return Artifact(pin=pin, path=cached, sha256=link.sha256,
                                is_wheel=link.filename.endswith(".whl"))
        tmpdir = self._cache / "artifacts" / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmpdir, suffix=".part")
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                if link.url.startswith("file:"):
                    src = Path(urllib.request.url2pathname(urllib.parse.urlsplit(link.url).path))
                    with open(src, "rb") as f:
                        while chunk := f.read(CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                else:
                    self._stream_to(link, pin, out, h)
            actual = h.hexdigest()
            check_hash(pin, actual, link.filename)
            dest = self._cached(actual, link.filename)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            return Artifact(pin=pin, path=dest, sha256=actual,
                            is_wheel=link.filename.endswith(".whl"))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _stream_to(self, link: Link, pin: Pin, out: BinaryIO, h: hashlib._Hash) -> None:
        """The bytes at ``link``, as they come, written to ``out`` and hashed."""
        hint = "check the network and the index, or use --find-links"
        try:
            resp, _final = self._get(link.url, stream=True)
            try:
                if resp.status >= 400:
                    raise EnvironmentProblem(f"cannot download {link.filename} for {pin.key}: "
                                             f"HTTP {resp.status} {resp.reason}", hint=hint)
                # the bytes as served: an archive is not to be unpacked on its way
                for chunk in resp.stream(CHUNK, decode_content=False):
                    h.update(chunk)
                    out.write(chunk)
            finally:
                resp.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise EnvironmentProblem(
                f"cannot download {link.filename} for {pin.key}: {_reason(exc)}",
                hint=hint) from exc

    def _selection(self, pin: Pin, target: Target) -> Path:
        """Where the choice made for ``pin``, ``target`` and these sources is remembered.

        The choice is made once against the index and find-links, never among whatever
        the cache happens to hold, so the same lock always gives the same artifacts."""
        key = json.dumps([pin.key, sorted(pin.hashes), [target.python, target.arch,
                          target.glibc], self._index.index_url and
                          redact_url(self._index.index_url),
                          list(self._index.find_links)], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self._cache / "selections" / digest[:2] / digest

    def cached_choice(self, pin: Pin, target: Target) -> Artifact | None:
        """The artifact chosen for ``pin`` before, when it is still in the cache."""
        try:
            sha, filename = self._selection(pin, target).read_text().split()
        except (OSError, ValueError):
            return None
        path = self._cached(sha, filename)
        if not path.exists():
            return None
        return Artifact(pin=pin, path=path, sha256=sha, is_wheel=filename.endswith(".whl"))

    def _remember(self, art: Artifact, target: Target) -> None:
        record = self._selection(art.pin, target)
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
        tmp.write_text(f"{art.sha256} {art.path.name}\n")
        os.replace(tmp, record)

    def fetch_one(self, pin: Pin, target: Target) -> Artifact:
        """The artifact for ``pin``: the best cached or downloadable wheel, else the
        sdist (chosen once, then remembered)."""
        hit = self.cached_choice(pin, target)
        if hit is not None:
            return hit
        wheel, sdist = self.choose(pin, self.links(pin.name), target)
        link = wheel or sdist
        if link is None and self._offline_hint is not None:
            where = ", ".join(self._index.find_links) or "no --find-links/--wheelhouse"
            raise InputError(
                f"offline: no artifact of {pin.key} that fits the target is in the "
                f"wheelhouse or find-links ({where}) or in the cache",
                hint=self._offline_hint,
            )
        if link is None:
            raise InputError(
                f"no wheel for {pin.key} fits the target (CPython "
                f"{target.python[0]}.{target.python[1]}, {target.arch}, glibc "
                f"{target.glibc[0]}.{target.glibc[1]}) and it has no sdist to build",
                hint="raise [target] glibc in the runtime profile, or pick another version",
            )
        art = self._download(pin, link)
        self._remember(art, target)
        return art

    def fetch(self, pins: Sequence[Pin], target: Target, *,
              progress: Callable[[str], None] | None = None) -> list[Artifact]:
        """One artifact per pin (``fetch_one``), downloaded in parallel."""

        def one(pin: Pin) -> Artifact:
            art = self.fetch_one(pin, target)
            if progress is not None:
                progress(art.path.name)
            return art

        with ThreadPoolExecutor(max_workers=self._jobs) as pool:
            return list(pool.map(one, pins))


class _Http:
    """GETs over pooled connections (urllib3): one DNS lookup and TLS handshake per host
    and thread rather than per request, through the environment's proxies
    (``https_proxy``, ``no_proxy``, ... as urllib reads them), with transient failures
    (a refused connection, a failed name lookup, HTTP 429 and 5xx) retried."""

    RETRIES = urllib3.Retry(total=4, connect=4, read=2, status=2, backoff_factor=0.25,
                            status_forcelist=(429, 500, 502, 503, 504),
                            allowed_methods=frozenset({"GET"}), raise_on_status=False,
                            redirect=False)  # redirects: Fetcher._get, hop by hop

    def __init__(self, tls: ssl.SSLContext, *, timeout: float, size: int) -> None:
        self._proxies = urllib.request.getproxies()
        self._kw: dict[str, Any] = {
            "num_pools": 16, "maxsize": size, "ssl_context": tls, "retries": self.RETRIES,
            "timeout": urllib3.Timeout(connect=timeout, read=timeout)}
        self._managers: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _manager(self, url: str) -> urllib3.PoolManager:
        parts = urllib.parse.urlsplit(url)
        proxy = self._proxies.get(parts.scheme, "")
        if proxy and urllib.request.proxy_bypass(
                parts.netloc.rpartition("@")[2]):  # host:port, as urllib asks
            proxy = ""
        with self._lock:
            found = self._managers.get(proxy)
            if found is None:
                found = _proxy_manager(proxy, self._kw) if proxy \
                    else urllib3.PoolManager(**self._kw)
                self._managers[proxy] = found
            return found

    def get(self, url: str, headers: dict[str, str], *, stream: bool) -> Any:
        return self._manager(url).request("GET", url, headers=headers,
                                          preload_content=not stream, redirect=False)


def _proxy_manager(proxy: str, kw: dict[str, Any]) -> urllib3.ProxyManager:
    """A pool through ``proxy`` as urllib would use it: ``host:port`` alone is an http
    proxy, and ``user:password@`` in it is sent as Proxy-Authorization."""
    if "://" not in proxy:
        proxy = "http://" + proxy
    parsed = urllib3.util.parse_url(proxy)
    headers = None
    if parsed.auth:
        headers = urllib3.make_headers(proxy_basic_auth=urllib.parse.unquote(parsed.auth))
        proxy = parsed._replace(auth=None).url
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **kw)


def _reason(exc: BaseException) -> object:
    """What went wrong, without urllib3's wrapping (a ``MaxRetryError`` names its
    cause)."""
    reason = getattr(exc, "reason", None)
    while isinstance(reason, urllib3.exceptions.HTTPError) and getattr(reason, "reason", None):
        reason = reason.reason  # type: ignore[attr-defined]
    return reason or exc


def check_hash(pin: Pin, actual: str, filename: str) -> None:
    allowed = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
    if actual not in allowed:
        expected = ", ".join(sorted(allowed)[:3]) + (" ..." if len(allowed) > 3 else "")
        raise InputError(
            f"hash mismatch for {pin.key} ({filename}): expected one of sha256:{expected}; "
            f"got sha256:{actual}",
            hint="the artifact is not the one locked; nothing was installed. Check the index "
                 "or relock with `isolate lock`",
        )
