"""Outbound requests on a caller's behalf never reach the platform's own or private
networks unless configured to (geoplatform.net), and the server's code has no
other way out to the network."""

from __future__ import annotations

import ast
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from geoplatform import net
from geoplatform.net import OutboundRefused, check_url, fetch

PACKAGE = Path(net.__file__).resolve().parent

REFUSED = [
    "http://127.0.0.1/", "http://localhost:8080/admin", "http://127.1/", "http://2130706433/",  # decimal
    "http://0x7f.0.0.1/", "http://017700000001/",  # hex, octal
    "http://0.0.0.0:5432/", "http://[::1]/", "http://[::]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://10.0.0.1/", "http://172.16.5.4/",
    "http://192.168.1.1/", "http://100.64.0.1/", "http://[fc00::1]/", "http://224.0.0.1/", "http://240.0.0.1/",
    "http://255.255.255.255/",
]
NOT_HTTP = ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.org/x", "dict://127.0.0.1:11211/",
            "//example.org/x", "javascript:alert(1)", "http://user:secret@example.org/", "http:///nohost"]


@pytest.mark.parametrize("url", REFUSED)
def test_own_and_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="only public addresses"):
        check_url(url)


@pytest.mark.parametrize("url", NOT_HTTP)
def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(OutboundRefused):
        check_url(url)


def test_public_addresses_pass() -> None:
    assert check_url("http://8.8.8.8:8080/a?b=1").path == "/a?b=1"
    assert check_url("https://[2001:4860:4860::8888]/").port == 443
    assert check_url("http://10.20.3.4/", net.networks(["10.20.0.0/16"])).address == "10.20.3.4"
    with pytest.raises(Exception, match="not an IP network"):
        net.networks(["intranet"])


class _Canary:
    """An HTTP server on a loopback address that counts who reached it."""

    def __init__(self, host: str = "127.0.0.1", answer: tuple[int, dict[str, str], bytes] = (200, {}, b"ok")):
        hits: list[dict[str, Any]] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append({"path": self.path, "host": self.headers.get("Host")})
                status, headers, body = answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary() -> Iterator[_Canary]:
    c = _Canary()
    yield c
    c.close()


def test_loopback_only_where_configured(canary: _Canary) -> None:
    with pytest.raises(OutboundRefused):
        fetch(canary.url + "/hook")
    assert canary.hits == []
    r = fetch(canary.url + "/hook", allow=["127.0.0.1/32"])
    assert (r.status, r.body) == (200, b"ok") and canary.hits[0]["path"] == "/hook"


def test_a_redirect_is_checked_again() -> None:
    inner = _Canary("127.0.0.2")
    outer = _Canary(answer=(302, {"Location": inner.url + "/secret"}, b""))
    try:
        with pytest.raises(OutboundRefused, match="127.0.0.2"):
            fetch(outer.url + "/go", allow=["127.0.0.1/32"])
        assert len(outer.hits) == 1 and inner.hits == []
        assert fetch(outer.url + "/go", allow=["127.0.0.0/30"]).body == b"ok" and len(inner.hits) == 1
    finally:
        inner.close()
        outer.close()


def test_the_checked_address_is_the_one_called(canary: _Canary, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name is resolved once: a second answer (DNS rebinding) is never asked for."""
    port = int(canary.url.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: str, *args: Any, **kw: Any) -> Any:
        if host == "hooks.example":
            lookups.append(host)
            ip = "127.0.0.1" if len(lookups) == 1 else "10.9.9.9"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    r = fetch(f"http://hooks.example:{port}/x", allow=["127.0.0.1/32"])
    assert r.status == 200 and lookups == ["hooks.example"]
    assert canary.hits[0]["host"] == f"hooks.example:{port}"


def test_answers_are_capped() -> None:
    big = _Canary(answer=(200, {}, b"x" * 5000))
    loop = _Canary()
    loop_url = loop.url
    loop.close()
    looping = _Canary(answer=(302, {"Location": "/again"}, b""))
    try:
        with pytest.raises(OutboundRefused, match="more than 1,000 bytes"):
            fetch(big.url, allow=["127.0.0.1/32"], max_bytes=1000)
        with pytest.raises(OutboundRefused, match="redirects"):
            fetch(looping.url, allow=["127.0.0.1/32"])
        with pytest.raises(OutboundRefused, match="could not be called"):
            fetch(loop_url, allow=["127.0.0.1/32"], timeout=2)
    finally:
        big.close()
        looping.close()


_CLIENTS = {"httpx", "requests", "urllib.request", "urllib3", "aiohttp", "http.client", "pycurl", "websockets",
            "ftplib", "smtplib", "paho"}


def test_the_server_code_reaches_the_network_only_through_net() -> None:
    """No module of the package but geoplatform.net imports an HTTP (or other network)
    client or opens a connection: a new outbound path cannot bypass the checks."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "net.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Attribute) and node.attr in ("create_connection", "urlopen", "connect_ex"):
                names = [node.attr]
            for n in names:
                if n in _CLIENTS or n.split(".")[0] in _CLIENTS or n in ("create_connection", "urlopen",
                                                                          "connect_ex"):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {n}")
    assert not found, "network access outside geoplatform.net:\n" + "\n".join(found)
