"""Outbound HTTP on a caller's behalf, kept away from the platform's own network.

A request the server makes because a caller asked for it (a callback URL to
notify, a remote data link to read) could otherwise be aimed at the server's
loopback, the city's private networks or a cloud metadata endpoint: a
server-side request forgery. Every such request goes through :func:`fetch`,
which

* takes ``http`` and ``https`` URLs only, without user info;
* resolves the host once and refuses it if any of its addresses is not a
  global unicast address (loopback, private, shared, link-local, multicast,
  reserved, unspecified; IPv4 inside IPv6 (mapped, NAT64, 6to4, Teredo) is
  judged by the IPv4 address it carries), unless an address is in the
  settings' ``outbound_allow`` networks;
* connects to the address it checked, not to a second lookup of the name (so a
  name that resolves to a public address and then to a private one, DNS
  rebinding, reaches nothing), sending the name as Host and TLS server name;
* follows redirects itself, checking each new URL the same way, at most
  :data:`MAX_REDIRECTS` times; and caps the time and the size of the answer.

The server makes no outbound request today; the Processes callbacks and remote
links to come use this function, and ``tests/test_net.py`` checks that the
server's code reaches the network nowhere else.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from geoplatform.errors import InvalidParameterValue

MAX_REDIRECTS = 3
MAX_BYTES = 16 * 1024 * 1024
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(InvalidParameterValue):
    """A URL the platform will not call on a caller's behalf."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def networks(allowed: Iterable[str]) -> tuple[Network, ...]:
    """The networks of ``outbound_allow`` (CIDR or single addresses)."""
    out = []
    for n in allowed:
        try:
            out.append(ipaddress.ip_network(n.strip(), strict=False))
        except ValueError:
            raise InvalidParameterValue(f"outbound_allow: {n!r} is not an IP network (CIDR)") from None
    return tuple(out)


def _carried_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: Address) -> bool:
    """A global unicast address, as is every IPv4 address it carries."""
    inner = _carried_ipv4(ip)
    if inner is not None and not is_public(inner):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified


def check_url(url: str, allow: Iterable[Network] = ()) -> Target:
    """Check ``url`` and resolve its host; raise :class:`OutboundRefused` naming the problem."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused(f"{url!r}: only http and https URLs are called, not {parts.scheme or 'no scheme'!r}")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(f"{url!r}: URLs with user info are not called")
    host = parts.hostname
    if not host:
        raise OutboundRefused(f"{url!r} names no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"{url!r}: host {host!r} does not resolve ({exc})") from None
    allow = tuple(allow)
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not is_public(ip) and not any(ip in n for n in allow):
            raise OutboundRefused(f"{url!r}: host {host!r} is {ip}, an address of the platform's own or private "
                                  "networks; only public addresses are called (see the outbound_allow setting)")
        addresses.append(str(ip))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, addresses[0], path)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address, verifying the certificate of the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.address, target.port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = target.host

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


def fetch(url: str, *, allow: Iterable[str] = (), method: str = "GET", body: bytes | None = None,
          headers: Mapping[str, str] | None = None, timeout: float = 10.0, max_bytes: int = MAX_BYTES) -> Response:
    """Call ``url`` on a caller's behalf, as the module docstring says."""
    nets = networks(allow)
    for _ in range(MAX_REDIRECTS + 1):
        t = check_url(url, nets)
        conn: http.client.HTTPConnection = (_PinnedHTTPS(t, timeout) if t.scheme == "https"
                                            else http.client.HTTPConnection(t.address, t.port, timeout=timeout))
        try:
            name = f"[{t.host}]" if ":" in t.host else t.host  # an IPv6 literal goes in brackets
            host = name if t.port == (443 if t.scheme == "https" else 80) else f"{name}:{t.port}"
            conn.request(method, t.path, body=body, headers={**(headers or {}), "Host": host})
            r = conn.getresponse()
            data = r.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise OutboundRefused(f"{url!r} answered more than {max_bytes:,} bytes")
            if r.status in (301, 302, 303, 307, 308) and r.getheader("Location"):
                url = urljoin(url, r.getheader("Location", ""))
                if r.status == 303 or (r.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            return Response(r.status, dict(r.getheaders()), data, url)
        except OSError as exc:
            raise OutboundRefused(f"{url!r} could not be called: {exc}") from None
        finally:
            conn.close()
    raise OutboundRefused(f"{url!r}: more than {MAX_REDIRECTS} redirects")
