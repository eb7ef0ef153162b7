from __future__ import annotations

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"

    def ready(self) -> None:
        from inference.conf import load_settings

        settings = load_settings()
        if settings.enabled and settings.warm_start:  # RIGFIT_DEMO_WARM_START=1: load in the background at start
            from inference.engine import get_engine

            get_engine().start_loading()
