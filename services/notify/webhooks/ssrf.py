"""The SSRF guard: a webhook may only reach the public internet.

An endpoint's URL is checked when it is registered or changed, and again before every try:

1. the URL itself: ``https`` (``http`` only when ENVIRONMENT=development), no user or password, a
   hostname or an IP literal, a port in 1–65535, no fragment;
2. the host is resolved (``getaddrinfo``, so ``127.1``, ``0x7f.1`` and ``2130706433`` resolve as the
   network stack would), and it is refused if **any** address is not a public unicast address:
   loopback, private (RFC 1918, ``fc00::/7``), link-local (``169.254/16``, ``fe80::/10``),
   shared (``100.64/10``), multicast, unspecified, reserved or otherwise special-use, and the cloud
   metadata addresses. IPv4 inside IPv6 (``::ffff:a.b.c.d``, 6to4, NAT64) is judged as that IPv4;
3. at send time the request goes to the very address that was checked (the URL's host replaced by
   it, with the original ``Host`` header and TLS server name), so DNS cannot answer differently
   between the check and the connection (DNS rebinding). Redirects are never followed.

``NOTIFY_WEBHOOKS_ALLOW_LOOPBACK`` (development only) lets ``127.0.0.0/8`` and ``::1`` through, and
nothing else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from services.notify.settings import NotifySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
LOOPBACK = "a loopback address"
RESOLVE_TIMEOUT = 5.0

METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle…
    "169.254.170.2", "169.254.170.23",  # AWS ECS task metadata
    "100.100.100.200",  # Alibaba Cloud
    "fd00:ec2::254", "fd00:ec2::23",  # AWS over IPv6
))
PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
SHARED = ipaddress.ip_network("100.64.0.0/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


class Refused(ValueError):
    """The URL, or an address its host resolves to, may not be called."""


class Unresolvable(Refused):
    """The host has no address (or DNS did not answer in time)."""


class Loopback(Refused):
    """The host is, or resolves to, a loopback address (which a development server may allow)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in NAT64) or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` may not be called, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)  # loopback inside IPv6 is not the ::1 the setting allows
            return f"{problem} ({inner} inside {ip})" if problem else None
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return None if allow_loopback else LOOPBACK
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in SHARED:
        return "a shared (carrier-grade NAT) address"
    if any(ip.version == net.version and ip in net for net in PRIVATE):
        return "a private address"
    if ip.is_reserved or ip.is_private or not ip.is_global:
        return "a reserved or special-use address"
    return None


@dataclass(frozen=True)
class Destination:
    """A checked URL: where it points, and the addresses it resolved to (all allowed)."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]

    @property
    def host(self) -> str:
        return self.url.raw_host.decode("ascii")

    def pinned(self) -> tuple[httpx.URL, dict[str, str], dict]:
        """(URL to the first checked address, headers, request extensions): the connection goes to that
        address while the server sees the original ``Host`` and, over TLS, the original server name."""
        ip = self.addresses[0]
        host = self.host
        literal = _ip_literal(host)
        host_header = f"[{host}]" if ":" in host else host
        if self.url.port is not None:
            host_header += f":{self.url.port}"
        extensions = {}
        if self.url.scheme == "https" and literal is None:
            extensions["sni_hostname"] = host  # also the name the certificate must carry
        return self.url.copy_with(host=str(ip)), {"Host": host_header}, extensions


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse(url: str, *, allow_http: bool) -> httpx.URL:
    """The URL, normalised (lower-case host, IDNA), or :class:`Refused` saying what is wrong with it."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url) or "\\" in url:
        raise Refused("spaces, control characters and backslashes are not allowed")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise Refused(f"not a URL: {exc}") from None
    allowed = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in allowed:
        raise Refused("the URL must start with " + " or ".join(f"{s}://" for s in allowed))
    if parsed.userinfo:
        raise Refused("a user name or password in the URL is not allowed; authenticate with the signature")
    if parsed.fragment:
        raise Refused("a #fragment is never sent; leave it out")
    host = parsed.raw_host.decode("ascii", "replace").lower()
    if not host:
        raise Refused("the URL has no host")
    if _ip_literal(host) is None and not _HOSTNAME.match(host):
        raise Refused("the host is not a valid hostname or IP address")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise Refused("the port must be between 1 and 65535")
    return parsed


async def resolve(host: str, port: int, timeout: float = RESOLVE_TIMEOUT) -> tuple[IPAddress, ...]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), timeout)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"the host {host} cannot be resolved ({exc})") from None
    except TimeoutError:
        raise Unresolvable(f"the host {host} did not resolve within {timeout:g} s") from None
    found: list[IPAddress] = []
    for family, *_rest, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise Unresolvable(f"the host {host} has no IPv4 or IPv6 address")
    return tuple(found)


async def check(url: str, *, allow_loopback: bool, allow_http: bool) -> Destination:
    """Parse, resolve and judge ``url``; :class:`Refused` (or :class:`Unresolvable`) says why not."""
    parsed = parse(url, allow_http=allow_http)
    host = parsed.raw_host.decode("ascii")
    addresses = await resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    for ip in addresses:
        problem = address_problem(ip, allow_loopback=allow_loopback)
        if problem:
            where = str(ip) if _ip_literal(host) == ip else f"{host} resolves to {ip}, which"
            refused = Loopback if problem == LOOPBACK else Refused
            raise refused(f"{where} is {problem}; webhooks go only to public addresses")
    return Destination(parsed, addresses)


async def check_with(settings: NotifySettings, url: str) -> Destination:
    """:func:`check` as the settings allow: loopback with ``NOTIFY_WEBHOOKS_ALLOW_LOOPBACK``, http in development."""
    return await check(url, allow_loopback=settings.webhooks_allow_loopback,
                       allow_http=settings.environment == "development")


# What a try to a checked destination may raise instead of an answer (timeouts are httpx's or asyncio's).
SEND_FAILURES = (Refused, httpx.HTTPError, TimeoutError)


def send_failure(exc: Exception, timeout: float) -> str:
    """The error a try that raised one of :data:`SEND_FAILURES` is kept with: refused by the guard, no
    answer within ``timeout`` seconds, or the transport's error by its name (and message, when it has one)."""
    if isinstance(exc, Refused):
        return f"not sent: {exc}"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return f"no answer within {timeout:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
