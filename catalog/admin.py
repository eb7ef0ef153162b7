from __future__ import annotations

from django.contrib import admin

from catalog.models import Hardware, Model, Quantization


class QuantizationInline(admin.TabularInline):
    model = Quantization
    extra = 0


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "family", "publisher", "n_params", "modality", "context_length", "released", "featured"]
    list_filter = ["modality", "review_status", "featured", "family"]
    date_hierarchy = "released"
    search_fields = ["name", "slug", "family", "publisher"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [QuantizationInline]


@admin.register(Hardware)
class HardwareAdmin(admin.ModelAdmin):
    list_display = ["name", "vendor", "kind", "memory_bytes", "bandwidth_gbps", "fp16_tflops", "popular"]
    list_filter = ["kind", "vendor", "popular"]
    search_fields = ["name", "slug", "vendor"]
