"""Community benchmark runs: one flat record per run, speaking llama-bench's field names.

llama-bench (llama.cpp `tools/llama-bench`) writes one record per test with `n_prompt`, `n_gen`, `n_depth`,
`avg_ts`, `stddev_ts`, `samples_ts`, `samples_ns`, `n_gpu_layers`, `n_threads`, `n_batch`, `n_ubatch`, `type_k`,
`type_v`, `flash_attn`, `backends`, `build_commit`, `build_number`, `cpu_info`, `gpu_info`, `model_filename`,
`model_type`, `model_size`, `model_n_params` and `test_time`. The same names are used here so a pasted
`llama-bench -o json` output maps field for field.

Speeds are normalised into `decode_tps` and `prefill_tps` (see `BenchmarkRun.derive_speeds`), which is what the
aggregates, plots and plausibility checks read.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from catalog.models import Hardware, Model, Quantization

# The range a stored test_time may hold (benchmarks.forms refuses the future as well, which a constraint cannot).
# Outside it PostgreSQL can store dates psycopg cannot read back (BC, or after year 9999).
EARLIEST_TEST_TIME = datetime(2023, 1, 1, tzinfo=UTC)
LATEST_TEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)


class Status(models.TextChoices):
    PENDING = "pending", "Pending review"
    ACCEPTED = "accepted", "Accepted"
    FLAGGED = "flagged", "Flagged"
    REJECTED = "rejected", "Rejected"


class Channel(models.TextChoices):
    WEB = "web", "Web form"
    API = "api", "API"
    CLI = "cli", "Command line"
    SEED = "seed", "Seeded from a public source"


class Runtime(models.TextChoices):
    LLAMA_CPP = "llama.cpp", "llama.cpp"
    OLLAMA = "ollama", "Ollama"
    VLLM = "vllm", "vLLM"
    MLX = "mlx", "MLX"
    TRANSFORMERS = "transformers", "transformers"
    RIGFIT = "rigfit", "rigfit engine"


class Backend(models.TextChoices):
    CUDA = "cuda", "CUDA"
    METAL = "metal", "Metal"
    ROCM = "rocm", "ROCm"
    VULKAN = "vulkan", "Vulkan"
    CPU = "cpu", "CPU"
    OTHER = "other", "Other"


class TestKind(models.TextChoices):
    PROMPT = "pp", "Prompt processing (pp)"
    GENERATION = "tg", "Text generation (tg)"
    MIXED = "pg", "Prompt + generation (pg)"


class BenchmarkRunQuerySet(models.QuerySet["BenchmarkRun"]):
    def accepted(self) -> BenchmarkRunQuerySet:
        return self.filter(status=Status.ACCEPTED)

    def awaiting_review(self) -> BenchmarkRunQuerySet:
        return self.filter(status__in=[Status.PENDING, Status.FLAGGED])

    def with_relations(self) -> BenchmarkRunQuerySet:
        return self.select_related("model", "quantization", "hardware", "submitter")

    def for_group(
        self, *, hardware_id: int | None, model_id: int, quantization_id: int | None, runtime: str, backend: str
    ) -> BenchmarkRunQuerySet:
        return self.filter(
            hardware_id=hardware_id,
            model_id=model_id,
            quantization_id=quantization_id,
            runtime=runtime,
            backend=backend,
        )

    def filtered(
        self,
        *,
        model: str = "",
        quant: str = "",
        hardware: str = "",
        runtime: str = "",
        backend: str = "",
        test: str = "",
    ) -> BenchmarkRunQuerySet:
        queryset = self
        if model:
            queryset = queryset.filter(model__slug=model)
        if quant:
            queryset = queryset.filter(quant_name__iexact=quant)
        if hardware:
            queryset = queryset.filter(hardware__slug=hardware)
        if runtime:
            queryset = queryset.filter(runtime=runtime)
        if backend:
            queryset = queryset.filter(backend=backend)
        if test:
            queryset = queryset.filter(test=test)
        return queryset


class BenchmarkRun(models.Model):
    # What ran.
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="benchmark_runs")
    quantization = models.ForeignKey(
        Quantization, on_delete=models.SET_NULL, null=True, blank=True, related_name="benchmark_runs"
    )
    quant_name = models.CharField(max_length=24, help_text="As submitted (Q4_K_M, F16, ...); kept when unmatched.")
    model_filename = models.CharField(max_length=300, blank=True)
    model_type = models.CharField(
        max_length=120, blank=True, help_text="llama-bench's model_type, e.g. 'gemma3 270M Q4_K - Medium'."
    )
    model_size = models.BigIntegerField(null=True, blank=True, help_text="Bytes of weights, as llama-bench reports.")
    model_n_params = models.BigIntegerField(null=True, blank=True)

    # Where it ran.
    hardware = models.ForeignKey(
        Hardware, on_delete=models.PROTECT, null=True, blank=True, related_name="benchmark_runs"
    )
    hardware_name = models.CharField(max_length=200, help_text="As submitted; held for review when unmatched.")
    os = models.CharField(max_length=120, blank=True)
    cpu_info = models.CharField(max_length=200, blank=True)
    gpu_info = models.CharField(max_length=200, blank=True)
    ram_bytes = models.BigIntegerField(null=True, blank=True)
    driver = models.CharField(max_length=120, blank=True)

    # How it ran.
    runtime = models.CharField(max_length=20, choices=Runtime.choices)
    runtime_version = models.CharField(max_length=60, blank=True, help_text="llama-bench's build_number, or a version.")
    build_commit = models.CharField(max_length=60, blank=True)
    backend = models.CharField(max_length=10, choices=Backend.choices)
    n_gpu_layers = models.PositiveIntegerField(null=True, blank=True)
    n_threads = models.PositiveIntegerField(null=True, blank=True)
    n_batch = models.PositiveIntegerField(null=True, blank=True)
    n_ubatch = models.PositiveIntegerField(null=True, blank=True)
    n_ctx = models.PositiveIntegerField(null=True, blank=True, help_text="Context size, where the runtime sets one.")
    type_k = models.CharField(max_length=10, default="f16")
    type_v = models.CharField(max_length=10, default="f16")
    flash_attn = models.BooleanField(null=True, blank=True)

    # The test and its results.
    n_prompt = models.PositiveIntegerField(default=0)
    n_gen = models.PositiveIntegerField(default=0)
    n_depth = models.PositiveIntegerField(default=0)
    test = models.CharField(max_length=2, choices=TestKind.choices, editable=False)
    avg_ts = models.FloatField(help_text="Mean tokens/sec of the test (llama-bench's avg_ts).")
    stddev_ts = models.FloatField(default=0.0)
    samples_ts = models.JSONField(default=list, blank=True)
    samples_ns = models.JSONField(default=list, blank=True)
    prompt_tps = models.FloatField(
        null=True, blank=True, help_text="Prompt tokens/sec reported separately (then avg_ts is generation only)."
    )
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Time to first token, milliseconds.")
    power_watts = models.FloatField(null=True, blank=True)
    test_time = models.DateTimeField(null=True, blank=True, help_text="When the test ran (UTC).")
    decode_tps = models.FloatField(null=True, blank=True, editable=False)
    prefill_tps = models.FloatField(null=True, blank=True, editable=False)

    # Who sent it and what became of it.
    submitted_at = models.DateTimeField(auto_now_add=True)
    submitter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="benchmark_runs"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    status_reason = models.CharField(max_length=300, blank=True)
    source_url = models.URLField(blank=True, help_text="Public source, required for seeded runs.")
    notes = models.TextField(blank=True)
    payload_sha256 = models.CharField(max_length=64, unique=True, editable=False)

    objects = BenchmarkRunQuerySet.as_manager()

    class Meta:
        ordering = ["-submitted_at", "-id"]
        permissions = [("moderate_benchmarkrun", "Can accept or reject benchmark runs")]
        indexes = [
            models.Index(fields=["model", "status"], name="bench_model_status"),
            models.Index(fields=["hardware", "status"], name="bench_hardware_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(avg_ts__gt=0), name="bench_avg_ts_positive"),
            models.CheckConstraint(condition=Q(stddev_ts__gte=0), name="bench_stddev_ts_nonnegative"),
            models.CheckConstraint(condition=Q(n_prompt__gt=0) | Q(n_gen__gt=0), name="bench_has_tokens"),
            models.CheckConstraint(
                condition=Q(test_time__isnull=True)
                | Q(test_time__gte=EARLIEST_TEST_TIME, test_time__lt=LATEST_TEST_TIME),
                name="bench_test_time_in_range",
            ),
        ]

    def __str__(self) -> str:
        hardware = self.hardware.name if self.hardware_id else self.hardware_name
        return f"{self.model} {self.quant_name} on {hardware}: {self.test_label} {self.avg_ts:.1f} t/s"

    def get_absolute_url(self) -> str:
        return reverse("benchmarks:run_detail", kwargs={"pk": self.pk})

    @property
    def test_label(self) -> str:
        """llama-bench's test name: pp512, tg128, pp512+tg128, with @d<depth> when a depth is set."""
        parts = []
        if self.n_prompt:
            parts.append(f"pp{self.n_prompt}")
        if self.n_gen:
            parts.append(f"tg{self.n_gen}")
        label = "+".join(parts)
        return f"{label} @ d{self.n_depth}" if self.n_depth else label

    def derive_speeds(self) -> None:
        """Fill `test`, `decode_tps` and `prefill_tps` from the llama-bench fields.

        pp tests measure prompt processing, tg tests generation. A mixed pp+tg test's avg_ts is llama-bench's
        combined rate (all tokens / total time), which is neither; but when the submitter reports `prompt_tps`
        separately (rigfit's engine, Ollama's eval counters), `avg_ts` is taken to be the generation rate.
        """
        if self.n_prompt and not self.n_gen:
            self.test = TestKind.PROMPT
            self.prefill_tps, self.decode_tps = self.avg_ts, None
        elif self.n_gen and not self.n_prompt:
            self.test = TestKind.GENERATION
            self.decode_tps, self.prefill_tps = self.avg_ts, self.prompt_tps
        else:
            self.test = TestKind.MIXED
            self.prefill_tps = self.prompt_tps
            self.decode_tps = self.avg_ts if self.prompt_tps is not None else None

    @property
    def group_key(self) -> tuple[int | None, int, int | None, str, str]:
        return (self.hardware_id, self.model_id, self.quantization_id, self.runtime, self.backend)


class ModerationDecision(models.Model):
    """Every status change of a run: by a moderator, or automatic at submission (moderator empty)."""

    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="decisions")
    moderator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    from_status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.CharField(max_length=300)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        who = self.moderator or "system"
        return f"{who}: {self.from_status or 'new'} -> {self.to_status} ({self.reason})"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A per-user API token. Only its SHA-256 is stored; the token itself is shown once, at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="benchmark_tokens")
    name = models.CharField(max_length=60)
    prefix = models.CharField(max_length=12, help_text="First characters, to tell tokens apart.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class RateCount(models.Model):
    """One rate-limit window's count, for the database store (benchmarks.services.check_rate): shared by every worker
    and host on the one database, where no Redis is configured. `key` names the scope, the client and the window."""

    key = models.CharField(max_length=100, unique=True)
    count = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
