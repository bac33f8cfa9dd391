"""The client's address and scheme behind reverse proxies: the one place that reads
X-Forwarded-For and X-Forwarded-Proto (uvicorn runs with `--no-proxy-headers`).

Each proxy in front of the app appends the address it received the request from to
X-Forwarded-For, and whatever the client sent stays on the left. So the client is the
TRUSTED_PROXY_HOPS-th entry from the right, and only when the peer that connected is one
of TRUSTED_PROXIES; a request from any other peer keeps its own address. Everything
downstream (the access log, login throttling through `request.client.host`) sees the
address derived here.
"""

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
SCHEMES = {"http": "http", "https": "https"}
WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


class TrustedProxies:
    """Peers allowed to speak for the client: IPs and networks, or `*` for any peer."""

    def __init__(self, spec: str) -> None:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.any_peer = "*" in items
        self.networks: list[IPNetwork] = [
            ipaddress.ip_network(item, strict=False) for item in items if item != "*"
        ]

    def __contains__(self, host: str) -> bool:
        if self.any_peer:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def forwarded_client(forwarded_for: Sequence[str], hops: int) -> str | None:
    """The address `hops` proxies saw the request come from: the hops-th entry from the
    right of X-Forwarded-For (all its headers, in order). Fewer entries than hops: the
    leftmost, since every entry was then written by a proxy. None without any entry."""
    entries = [entry.strip() for value in forwarded_for for entry in value.split(",")]
    entries = [entry for entry in entries if entry]
    if not entries or hops < 1:
        return None
    return entries[-min(hops, len(entries))]


def came_through_proxy(scope: Scope) -> bool:
    """Whether a proxy forwarded the request (they all add one of these headers)."""
    return any(name.decode("latin-1") in FORWARDING_HEADERS for name, _ in scope["headers"])


class ProxyHeadersMiddleware:
    """Sets `scope["client"]` and `scope["scheme"]` from the forwarding headers of trusted
    proxies; the original peer stays available as `scope["peer"]`."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: str, hops: int) -> None:
        self.app = app
        self.trusted = TrustedProxies(trusted_proxies)
        self.hops = hops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.hops > 0:
            peer = scope.get("client")
            if peer is not None and peer[0] in self.trusted:
                self._apply(scope, peer)
        await self.app(scope, receive, send)

    def _apply(self, scope: Scope, peer: tuple[str, int]) -> None:
        headers = Headers(scope=scope)
        client = forwarded_client(headers.getlist("x-forwarded-for"), self.hops)
        if client is not None:
            scope["peer"] = peer
            scope["client"] = (client, 0)
        proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        schemes = WEBSOCKET_SCHEMES if scope["type"] == "websocket" else SCHEMES
        if proto in schemes:
            scope["scheme"] = schemes[proto]
