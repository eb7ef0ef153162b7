"""What the demo shows of the machine it runs on, and which catalog device that is.

The probe app knows how to detect hardware and match it to the catalog; the probe also builds on this app (its
`bench` command runs the engine), so inference never imports the probe: the probe registers a provider here from
its AppConfig.ready(). Without one the demo says "unknown hardware" and leaves the submission's device empty.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Host:
    description: str  # "Intel Xeon · 2 cores, 24 GiB RAM, no GPU"
    hardware_slug: str = ""  # the catalog device it matches, for a prefilled benchmark submission
    hardware_name: str = ""


UNKNOWN = Host("unknown hardware")
_provider: Callable[[], Host] | None = None
_found: Host | None = None
_lock = threading.Lock()


def register_host_provider(provider: Callable[[], Host]) -> None:
    global _provider, _found
    with _lock:
        _provider, _found = provider, None


def this_host() -> Host:
    """The provider's answer, asked once per process (the hardware does not change under a running server)."""
    global _found
    with _lock:
        if _found is not None:
            return _found
        provider = _provider
    if provider is None:
        return UNKNOWN
    try:
        found = provider()
    except Exception:  # detection is a nicety on the demo page: never break it
        log.warning("Host detection failed", exc_info=True)
        return UNKNOWN
    with _lock:
        _found = found
    return found
