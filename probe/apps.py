from __future__ import annotations

from django.apps import AppConfig


class ProbeConfig(AppConfig):
    name = "probe"

    def ready(self) -> None:
        # The demo (inference) shows the server's hardware without importing the probe: it asks inference.hosts.
        from inference import hosts
        from probe.views import server_host

        hosts.register_host_provider(server_host)
