from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from catalog.caching import on_model_change

        post_save.connect(on_model_change, dispatch_uid="rigfit-data-version-save")
        post_delete.connect(on_model_change, dispatch_uid="rigfit-data-version-delete")
