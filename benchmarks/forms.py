"""Every way in goes through these forms: the web form, the API (its JSON is bound to `RunForm`) and llama-bench."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from benchmarks.models import EARLIEST_TEST_TIME, Backend, Runtime
from catalog.models import Model

MAX_TPS = 1_000_000.0  # far above any real single-stream figure; anything higher is a typo or junk
MAX_SAMPLES = 1000
MAX_TOKENS = 1_048_576
# Byte and parameter counts are stored in 64-bit integers; 2^63 and above failed in the database as a 500. These caps
# are far above any real figure (8 PiB of RAM or weights, 100 trillion parameters) and far below 2^63.
MAX_BYTES = 2**53
MAX_PARAMS = 10**14
MAX_SAMPLE_NS = 2**62
CLOCK_SKEW = timedelta(minutes=5)
# llama.cpp, whose llama-bench defines this schema, was first published in March 2023: no run of it can be older.
# An unbounded date is a stored denial of service: PostgreSQL keeps "0001-01-01T00:00:00+14:00" as a BC timestamp
# that psycopg cannot read back, and every page listing the run then fails. The model's check constraint holds the
# same lower bound and a fixed upper one (models.LATEST_TEST_TIME) for rows written around the forms.
SAMPLE_MEAN_TOLERANCE = 0.01  # samples must average to avg_ts within 1 %
KV_TYPES = ["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"]


def _finite_positive(value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise ValidationError("Must be a finite number.")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError("Must be zero or more." if allow_zero else "Must be greater than zero.")
    if value > MAX_TPS:
        raise ValidationError(f"Must be at most {MAX_TPS:,.0f}.")


def check_test_time(value: datetime | None, *, now: datetime | None = None) -> None:
    """Refuse a test time before 2023 or later than now (plus a small clock skew)."""
    if value is None:
        return
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value < EARLIEST_TEST_TIME:
        raise ValidationError("The test time is before 2023-01-01 (llama.cpp did not exist).", code="too_early")
    if value > (now or timezone.now()) + CLOCK_SKEW:
        raise ValidationError("The test time is in the future.", code="future")


def positive(value: float | None) -> None:
    _finite_positive(value)


def non_negative(value: float | None) -> None:
    _finite_positive(value, allow_zero=True)


class NumberListField(forms.Field):
    """A list of positive finite numbers, given as a JSON list or a comma/space separated string."""

    def __init__(self, *, integer: bool = False, max_value: float = MAX_TPS, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput)
        self.integer = integer
        self.max_value = max_value
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[float] | list[int]:
        if value in (None, "", []):
            return []
        if isinstance(value, str):
            items: list[Any] = [part for part in value.replace(",", " ").split() if part]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ValidationError("Enter a list of numbers.")
        if len(items) > MAX_SAMPLES:
            raise ValidationError(f"At most {MAX_SAMPLES} samples.")
        numbers: list[Any] = []
        for item in items:
            if isinstance(item, bool):
                raise ValidationError("Enter a list of numbers.")
            try:
                number = int(item) if self.integer else float(item)
            except (TypeError, ValueError) as exc:
                raise ValidationError("Enter a list of numbers.") from exc
            if not math.isfinite(number) or number <= 0:
                raise ValidationError("Every sample must be a finite number greater than zero.")
            if number > self.max_value:
                raise ValidationError(f"Every sample must be at most {self.max_value:,.0f}.")
            numbers.append(number)
        return numbers

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value


MODELS_DATALIST = "catalog-model-names"
HARDWARE_DATALIST = "catalog-hardware-names"


def model_field(*, required: bool = True, help_text: str = "") -> forms.CharField:
    """A model as people type it: its name ("Llama 3.1 8B Instruct"), repository or slug; the page's
    <datalist> of catalog names suggests as they type, with no script."""
    return forms.CharField(
        label="Model",
        max_length=200,
        required=required,
        help_text=help_text or "Its name as listed (Llama 3.1 8B Instruct), its repository or its slug.",
        widget=forms.TextInput(attrs={"list": MODELS_DATALIST, "autocomplete": "off"}),
    )


def hardware_field(*, required: bool = True, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label="Hardware",
        max_length=200,
        required=required,
        help_text=help_text
        or "As your system names it (NVIDIA GeForce RTX 4060) or as listed; unknown devices are held for review.",
        widget=forms.TextInput(attrs={"list": HARDWARE_DATALIST, "autocomplete": "off"}),
    )


def find_model(text: str) -> Model | None:
    """The catalog model a typed name means: its slug, else its name, repository or a unique part of its name
    (llamabench.match_model_name, the matching the llama-bench import shares)."""
    from benchmarks.llamabench import match_model_name

    value = text.strip()
    if not value:
        return None
    model = Model.objects.filter(slug=value).first() or Model.objects.filter(name__iexact=value).first()
    if model is not None:
        return model
    candidates = list(Model.objects.values_list("slug", "name", "source_repo"))
    slug = match_model_name(value, candidates)
    return Model.objects.filter(slug=slug).first() if slug else None


def optional_model_slug(text: str) -> str:
    """The catalog slug of a model typed by name or slug, "" for a blank field; a field error for an unknown one."""
    if not text.strip():
        return ""
    model = find_model(text)
    if model is None:
        raise ValidationError(f"No model '{text}' in the catalog.", code="unknown_model")
    return model.slug


def model_suggestions(text: str, limit: int = 3) -> list[str]:
    """Catalog names close to a name that matched none, for the error message."""
    import difflib

    names = list(Model.objects.values_list("name", flat=True))
    return difflib.get_close_matches(text.strip(), names, n=limit, cutoff=0.5)


def find_hardware_slug(text: str) -> str | None:
    """The catalog slug for a device as its system names it: the exact slug/name/alias match the services use,
    else the probe's name matching (probe.matching: "NVIDIA GeForce RTX 4060" is the catalog's RTX 4060).

    Remembered per catalog version: a name that matches nothing reads the whole hardware table (~0.2 s on the
    seeded catalog), and every test of a pasted llama-bench output asks again for the same name."""
    import hashlib

    from django.core.cache import cache

    from catalog.caching import data_version

    value = text.strip()
    if not value:
        return None
    key = f"rigfit:hardware-name:{data_version()}:{hashlib.sha256(value.encode()).hexdigest()}"
    found = cache.get(key)
    if found is None:
        found = _match_hardware_slug(value) or ""
        cache.set(key, found, 600)
    return found or None


def _match_hardware_slug(value: str) -> str | None:
    from benchmarks.services import match_hardware as exact_match
    from catalog.models import Hardware
    from probe.matching import match_hardware as probe_match

    hardware = exact_match(value)
    if hardware is not None:
        return hardware.slug
    candidates = list(Hardware.objects.only("slug", "name", "aliases", "memory_bytes", "vendor", "popular"))
    found = probe_match(value, None, candidates)
    return found.slug if found is not None else None


class RunForm(forms.Form):
    model_slug = model_field()
    quant = forms.CharField(label="Quantization", max_length=24, help_text="Q4_K_M, Q8_0, F16, ...")
    hardware = hardware_field()
    runtime = forms.ChoiceField(choices=Runtime.choices)
    runtime_version = forms.CharField(max_length=60, required=False)
    build_commit = forms.CharField(max_length=60, required=False)
    backend = forms.ChoiceField(choices=Backend.choices)
    # llama-bench's names in brackets: its pp512 test is n_prompt 512, tg128 is n_gen 128.
    n_prompt = forms.IntegerField(
        label="Prompt tokens (n_prompt)", min_value=0, max_value=MAX_TOKENS, initial=0, required=False
    )
    n_gen = forms.IntegerField(
        label="Generated tokens (n_gen)", min_value=0, max_value=MAX_TOKENS, initial=128, required=False
    )
    n_depth = forms.IntegerField(min_value=0, max_value=MAX_TOKENS, initial=0, required=False)
    avg_ts = forms.FloatField(label="Tokens/sec (mean)", validators=[positive])
    stddev_ts = forms.FloatField(label="Tokens/sec (stddev)", required=False, validators=[non_negative])
    samples_ts = NumberListField(label="Samples (tokens/sec)", help_text="One figure per repetition.")
    samples_ns = NumberListField(integer=True, max_value=MAX_SAMPLE_NS, label="Samples (nanoseconds)")
    prompt_tps = forms.FloatField(
        label="Prompt tokens/sec",
        required=False,
        validators=[positive],
        help_text="Only when the runtime reports prompt speed separately; then the mean above is generation only.",
    )
    ttft_ms = forms.FloatField(label="Time to first token (ms)", required=False, validators=[positive])
    n_gpu_layers = forms.IntegerField(min_value=0, max_value=100_000, required=False)
    n_threads = forms.IntegerField(min_value=1, max_value=4096, required=False)
    n_batch = forms.IntegerField(min_value=1, max_value=MAX_TOKENS, required=False)
    n_ubatch = forms.IntegerField(min_value=1, max_value=MAX_TOKENS, required=False)
    n_ctx = forms.IntegerField(min_value=1, max_value=MAX_TOKENS, required=False)
    type_k = forms.ChoiceField(choices=[(t, t) for t in KV_TYPES], initial="f16", required=False)
    type_v = forms.ChoiceField(choices=[(t, t) for t in KV_TYPES], initial="f16", required=False)
    flash_attn = forms.NullBooleanField(required=False)
    power_watts = forms.FloatField(required=False, validators=[positive])
    test_time = forms.DateTimeField(required=False, help_text="When the test ran (UTC).")
    os = forms.CharField(label="Operating system", max_length=120, required=False)
    cpu_info = forms.CharField(max_length=200, required=False)
    gpu_info = forms.CharField(max_length=200, required=False)
    ram_bytes = forms.IntegerField(min_value=1, max_value=MAX_BYTES, required=False)
    driver = forms.CharField(max_length=120, required=False)
    model_filename = forms.CharField(max_length=300, required=False)
    model_type = forms.CharField(max_length=120, required=False)
    model_size = forms.IntegerField(min_value=1, max_value=MAX_BYTES, required=False)
    model_n_params = forms.IntegerField(min_value=1, max_value=MAX_PARAMS, required=False)
    source_url = forms.URLField(required=False, max_length=200, assume_scheme="https")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, required=False)

    def clean_model_slug(self) -> Model:
        text = self.cleaned_data["model_slug"]
        model = find_model(text)
        if model is None:
            close = model_suggestions(text)
            hint = f" Did you mean {' or '.join(repr(name) for name in close)}?" if close else ""
            raise ValidationError(f"No model '{text}' in the catalog.{hint}", code="unknown_model")
        return model

    def clean_quant(self) -> str:
        return self.cleaned_data["quant"].strip().upper()

    def clean_hardware(self) -> str:
        """The catalog slug where the name matches a device (so the run is checked against it), else the name as
        given (held for review as unknown hardware)."""
        value = self.cleaned_data["hardware"].strip()
        if not value:
            raise ValidationError("This field is required.")
        return find_hardware_slug(value) or value

    def clean_test_time(self) -> Any:
        value = self.cleaned_data.get("test_time")
        check_test_time(value)
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name, default in (("n_prompt", 0), ("n_gen", 0), ("n_depth", 0), ("stddev_ts", 0.0)):
            if data.get(name) is None and name not in self.errors:
                data[name] = default
        data["type_k"] = data.get("type_k") or "f16"
        data["type_v"] = data.get("type_v") or "f16"
        if not self.errors.keys() & {"n_prompt", "n_gen"} and not (data["n_prompt"] or data["n_gen"]):
            self.add_error("n_gen", "A test needs prompt tokens (n_prompt) or generated tokens (n_gen).")
        self._check_samples(data)
        return data

    def _check_samples(self, data: dict[str, Any]) -> None:
        avg, stddev = data.get("avg_ts"), data.get("stddev_ts")
        samples = data.get("samples_ts") or []
        if avg is None or "samples_ts" in self.errors or not samples:
            return
        mean = statistics.fmean(samples)
        if abs(mean - avg) > SAMPLE_MEAN_TOLERANCE * avg:
            self.add_error("samples_ts", f"The samples average {mean:.4g} t/s, not the mean given ({avg:.4g} t/s).")
            return
        if len(samples) >= 2 and stddev is not None:
            sample_stddev = statistics.stdev(samples)
            if abs(sample_stddev - stddev) > max(0.05 * sample_stddev, 0.001 * avg, 0.01):
                self.add_error(
                    "stddev_ts",
                    f"The samples have a standard deviation of {sample_stddev:.4g} t/s, not {stddev:.4g} t/s.",
                )
        elif len(samples) == 1 and stddev:
            self.add_error("stddev_ts", "One sample has no spread: the standard deviation must be 0.")
        samples_ns = data.get("samples_ns") or []
        if samples_ns and "samples_ns" not in self.errors:
            if len(samples_ns) != len(samples):
                self.add_error("samples_ns", "There must be as many nanosecond samples as tokens/sec samples.")
                return
            tokens = (data.get("n_prompt") or 0) + (data.get("n_gen") or 0)
            for ts, ns in zip(samples, samples_ns, strict=True):
                if abs(tokens * 1e9 / ns - ts) > SAMPLE_MEAN_TOLERANCE * ts:
                    self.add_error("samples_ns", "The nanosecond samples do not match the tokens/sec samples.")
                    return


class LlamaBenchForm(forms.Form):
    """Paste or upload `llama-bench -o json` / `-o jsonl` output; the other fields fill what the output lacks."""

    output = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False, label="Paste the output")
    upload = forms.FileField(required=False, label="…or upload the file")
    model_slug = model_field(required=False, help_text="Leave empty to recognise it from the output.")
    quant = forms.CharField(max_length=24, required=False, help_text="Leave empty to recognise it from the output.")
    hardware = hardware_field(
        required=False,
        help_text="Leave empty to take it from the output's gpu_info (cpu_info for CPU runs); names as your "
        "system spells them are matched to the catalog.",
    )
    os = forms.CharField(label="Operating system", max_length=120, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Its own element ids: it shares a page with RunForm, whose fields have the same names.
        kwargs.setdefault("auto_id", "llamabench_%s")
        super().__init__(*args, **kwargs)

    def clean_model_slug(self) -> str:
        return optional_model_slug(self.cleaned_data.get("model_slug") or "")

    def clean_upload(self) -> Any:
        from benchmarks.llamabench import MAX_OUTPUT_BYTES

        upload = self.cleaned_data.get("upload")
        if upload is not None and upload.size > MAX_OUTPUT_BYTES:
            raise ValidationError(f"The file is larger than {MAX_OUTPUT_BYTES // 1024} KiB.", code="too_large")
        return upload

    def clean(self) -> dict[str, Any]:
        from benchmarks.llamabench import MAX_OUTPUT_BYTES

        data = super().clean()
        upload = data.get("upload")
        text = data.get("output") or ""
        if upload is not None and "upload" not in self.errors:
            raw = upload.read(MAX_OUTPUT_BYTES + 1)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("upload", "The file is not UTF-8 text.")
                return data
        if len(text.encode()) > MAX_OUTPUT_BYTES:
            self.add_error("output", f"The output is larger than {MAX_OUTPUT_BYTES // 1024} KiB.")
        elif not text.strip() and not self.errors.get("upload"):
            self.add_error("output", "Paste llama-bench output or upload a file.")
        data["text"] = text
        if not (data.get("hardware") or "").strip() and "hardware" not in self.errors and not self.errors:
            # RunForm matches the name to the catalog, test by test.
            data["hardware"] = device_named_in(text)
            if not data["hardware"]:
                self.add_error("hardware", "The output names no device; enter the hardware.")
        return data


def device_named_in(text: str) -> str:
    """The device a llama-bench output ran on, as it names it: gpu_info for a GPU run, cpu_info for a CPU run."""
    from benchmarks import llamabench

    try:
        records = llamabench.parse(text)
    except llamabench.LlamaBenchError:
        return ""
    first = records[0]
    field = "cpu_info" if llamabench.backend_from(first) == "cpu" else "gpu_info"
    # Several GPUs are listed comma-separated ("NVIDIA GeForce RTX 4090, NVIDIA GeForce RTX 4090"): the first.
    return str(first.get(field) or first.get("cpu_info") or "").split(",")[0].strip()[:200]


class ModerationForm(forms.Form):
    decision = forms.ChoiceField(choices=[("accepted", "Accept"), ("rejected", "Reject")])
    reason = forms.CharField(max_length=300)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=60, help_text="Where you will use it, e.g. 'my workstation'.")


class LeaderboardFilterForm(forms.Form):
    SORTS = {"fastest": ("-avg_ts", "-id"), "newest": ("-submitted_at", "-id"), "slowest": ("avg_ts", "id")}

    model = forms.CharField(
        max_length=200, required=False, widget=forms.TextInput(attrs={"list": MODELS_DATALIST, "autocomplete": "off"})
    )
    quant = forms.CharField(max_length=24, required=False)
    hardware = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"list": HARDWARE_DATALIST, "autocomplete": "off"}),
    )
    runtime = forms.ChoiceField(choices=[("", "Any runtime"), *Runtime.choices], required=False)
    backend = forms.ChoiceField(choices=[("", "Any backend"), *Backend.choices], required=False)
    test = forms.ChoiceField(
        choices=[("", "Any test"), ("tg", "Generation (tg)"), ("pp", "Prompt (pp)"), ("pg", "Mixed")],
        required=False,
    )
    sort = forms.ChoiceField(
        choices=[("", "Fastest first"), ("newest", "Newest first"), ("slowest", "Slowest first")], required=False
    )

    def clean_model(self) -> str:
        """A model's slug, from its name as typed or its slug."""
        return optional_model_slug(self.cleaned_data.get("model") or "")

    def clean_hardware(self) -> str:
        text = self.cleaned_data.get("hardware") or ""
        if not text.strip():
            return ""
        slug = find_hardware_slug(text)
        if slug is None:
            raise ValidationError(f"No hardware '{text}' in the catalog.", code="unknown_hardware")
        return slug

    def filters(self) -> dict[str, Any]:
        """The valid run filters (BenchmarkRunQuerySet.filtered's keywords), without the sort order; a filter
        that did not validate is left out (and its error shown)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if name != "sort"}

    def ordering(self) -> tuple[str, ...]:
        sort = (self.cleaned_data.get("sort") if self.is_bound and self.is_valid() else "") or "fastest"
        return self.SORTS.get(sort, self.SORTS["fastest"])
