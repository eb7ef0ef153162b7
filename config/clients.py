"""Who is asking: the one rule every rate limit and demo limit keys on (benchmarks, the demo, the hub import)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, unless REMOTE_ADDR is a proxy listed in RIGFIT_TRUSTED_PROXIES.

    Only then is X-Forwarded-For read, from the right, skipping the trusted proxies: the first address that is not
    one of ours is the client. Anything a client writes into the header itself sits further left and is ignored,
    so a spoofed header cannot dodge the rate limit.
    """
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    trusted = [ipaddress.ip_network(item, strict=False) for item in getattr(settings, "RIGFIT_TRUSTED_PROXIES", [])]
    if not trusted or not _in_networks(remote, trusted):
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _in_networks(address, trusted):
            return address
    return remote


def _in_networks(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
