"""Index credentials work the way pip users expect and are never printed."""

from __future__ import annotations

import base64
import sys

import pytest

from isolate.bundle.fetch import Fetcher
from isolate.credentials import redact_text, redact_url, split_credentials
from isolate.errors import CommandFailed
from isolate.locking.backends import IndexOptions
from isolate.proc import Runner


def test_redact_hides_userinfo_everywhere_in_text():
    assert redact_url("https://user:tok@host/simple") == "https://****@host/simple"
    assert redact_url("https://tok@host/simple") == "https://****@host/simple"
    assert redact_url("https://host/simple") == "https://host/simple"
    text = "ERROR: 401 for https://u:p@a.example/simple/x/ and git+ssh://git@github.com/x"
    assert redact_text(text) == ("ERROR: 401 for https://****@a.example/simple/x/ and "
                                 "git+ssh://****@github.com/x")
    assert redact_text("mail me at a@b.c") == "mail me at a@b.c"


def test_credentials_from_the_url_become_a_header(monkeypatch, tmp_path):
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    bare, auth = split_credentials("https://user%40corp:s3cret@pkgs.example:8443/simple/")
    assert bare == "https://pkgs.example:8443/simple/"
    assert auth == "Basic " + base64.b64encode(b"user@corp:s3cret").decode()
    assert split_credentials("https://pkgs.example/simple/") == (
        "https://pkgs.example/simple/", None)


def test_credentials_from_netrc(monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pkgs.example login ci password t0ken\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    _bare, auth = split_credentials("https://pkgs.example/simple/")
    assert auth == "Basic " + base64.b64encode(b"ci:t0ken").decode()


def test_fetcher_sends_the_index_credentials_to_the_index_host_only(monkeypatch, tmp_path):
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    fetcher = Fetcher(IndexOptions(index_url="https://u:p@pkgs.example/simple"), tmp_path)
    url, headers = fetcher._headers("https://pkgs.example/files/a-1.whl")
    assert url == "https://pkgs.example/files/a-1.whl"
    assert headers["Authorization"].startswith("Basic ")
    _url, other = fetcher._headers("https://files.pythonhosted.org/a-1.whl")
    assert "Authorization" not in other


def test_failed_commands_never_show_the_token():
    url = "https://user:sup3rsecret@pkgs.example/simple"
    code = f"import sys; print('cannot reach {url}', file=sys.stderr); sys.exit(1)"
    with pytest.raises(CommandFailed) as info:
        Runner().run([sys.executable, "-c", code, f"--index-url={url}"])
    shown = info.value.message + (info.value.details or "")
    assert "sup3rsecret" not in shown and "https://****@pkgs.example/simple" in shown


def test_verbose_echo_never_shows_the_token():
    lines: list[str] = []
    url = "https://user:sup3rsecret@pkgs.example/simple"
    done = Runner(echo=lines.append).run([sys.executable, "-c", f"print('{url}')", url])
    assert done.stdout.strip() == url  # captured as it is, for isolate's own use
    assert lines and not any("sup3rsecret" in line for line in lines)
    assert any("https://****@pkgs.example/simple" in line for line in lines[1:])
