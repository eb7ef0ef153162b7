from __future__ import annotations

from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    name = "benchmarks"
    verbose_name = "Community benchmarks"

    def ready(self) -> None:
        # The catalog never imports this app: it asks catalog.extensions for what benchmarks provide.
        from benchmarks import calibration, selectors
        from catalog import extensions

        extensions.register_speed_model(calibration.calibrated_speed_model)
        extensions.register_measured_speeds(selectors.measured_speeds)
        extensions.register_link("speed-accuracy", "benchmarks:accuracy")
        extensions.register_section(
            "model", extensions.Section("benchmarks/_model_section.html", lambda model: {"model": model})
        )
        extensions.register_section(
            "hardware", extensions.Section("benchmarks/_hardware_section.html", lambda hardware: {"hardware": hardware})
        )
