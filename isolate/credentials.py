"""Index credentials: never shown. One rule for every place a URL is printed or stored.

Users give credentials the way pip users do: in the URL (``https://user:token@host/simple``)
or in ``~/.netrc`` (``$NETRC``). pip and uv read both themselves; isolate's own index
client (``isolate.bundle.fetch``) uses :func:`basic_auth`. Whatever isolate prints, raises or
writes (logs, errors, results, manifests) passes through :func:`redact_url` or
:func:`redact_text` first.
"""

from __future__ import annotations

import base64
import netrc
import os
import re
import urllib.parse
from pathlib import Path

REDACTED = "****"
# scheme://user[:password]@ : the userinfo of any URL in free text
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s:]*(?::[^/@\s]*)?)@")


def redact_url(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://****@host/x``; other URLs unchanged."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Every URL's userinfo in ``text`` replaced by ``****``."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without its userinfo, and a ``Basic`` Authorization header value for it:
    from the URL itself, else from netrc (``$NETRC`` or ``~/.netrc``), else None."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None:
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        bare = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        return bare, _basic(user, password)
    if parts.scheme in ("http", "https") and parts.hostname:
        found = _from_netrc(parts.hostname)
        if found is not None:
            return url, _basic(*found)
    return url, None


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _from_netrc(host: str) -> tuple[str, str] | None:
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.is_file():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return None
    if entry is None:
        return None
    login, _account, password = entry
    return login or "", password or ""
