"""Every query-string input of the catalog pages goes through one of these forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db.models import F

from catalog import fit
from catalog.models import NEW_MODEL_DAYS, Hardware, HardwareKind, Modality, Model, ParamBand

GIB = 1024**3

KV_TYPE_CHOICES = [
    ("f16", "f16 (default)"),
    ("q8_0", "q8_0 (half the memory)"),
    ("q4_0", "q4_0 (a quarter)"),
    ("bf16", "bf16"),
    ("f32", "f32"),
]
# GiB, as the figures use them (system_ram_bytes = value x 2^30); the site marks GiB where it means it.
RAM_CHOICES = [(str(gb), f"{gb} GiB") for gb in (8, 16, 32, 64, 128, 192, 256, 512)]
CONTEXT_TICKS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576)
# The context control's range where no model sets it: 512 ... 128K.
CONTEXT_CONTROL_MAX = 131072


def context_label(tokens: int) -> str:
    """A context as people say it: 512, 4K, 128K (K = 1,024 tokens); other counts written out (5,000)."""
    if tokens >= 1024 and tokens % 1024 == 0:
        return f"{tokens // 1024}K"
    return f"{tokens:,}"


def context_choices(*, current: int | None, maximum: int | None = None) -> list[tuple[int, str]]:
    """The one context control's options: powers of two from 512 up to `maximum` (a model's own maximum, else 128K),
    a logarithmic scale; the maximum itself where it is no power of two; and the context in use, wherever it lies
    (a link or the API may ask for any count), so the control always shows what the figures assume."""
    top = maximum or CONTEXT_CONTROL_MAX
    values = {tick for tick in CONTEXT_TICKS if tick <= top}
    if top >= CONTEXT_TICKS[0]:
        values.add(top)
    if current:
        values.add(current)
    return [(value, context_label(value)) for value in sorted(values)]


def hardware_picker_queryset():
    """What the hardware <select> lists: popular discrete GPUs, every unified-memory machine and CPU."""
    from django.db.models import Q

    return Hardware.objects.filter(Q(popular=True) | ~Q(kind=HardwareKind.GPU)).order_by("kind", "-memory_bytes")


class HardwareSlugField(forms.CharField):
    """A hardware reference by slug. Any device in the catalog is accepted, not only the ones the picker lists."""

    def clean(self, value: Any) -> Hardware | None:  # type: ignore[override]
        slug = super().clean(value)
        if not slug:
            return None
        hardware = Hardware.objects.filter(slug=slug).first()
        if hardware is None:
            raise forms.ValidationError("Unknown hardware %(slug)s.", params={"slug": slug[:120]}, code="unknown")
        return hardware


class FitForm(forms.Form):
    """Hardware, context and serving knobs for a fit. Unbound or partly filled forms fall back to defaults."""

    hardware = HardwareSlugField(required=False, max_length=120)
    ctx = forms.IntegerField(required=False, min_value=1, label="Context (tokens)")
    kv_type = forms.ChoiceField(required=False, choices=KV_TYPE_CHOICES, label="KV cache type")
    users = forms.IntegerField(required=False, min_value=1, label="Concurrent users")
    gpu_count = forms.IntegerField(required=False, min_value=1, max_value=16, label="GPUs")
    DEFAULTS = {"kv_type": "f16", "users": 1, "gpu_count": 1, "ram_gb": 32}

    # The dropdown shows the default the figures use (32 GB) before anything is chosen, not its first option.
    ram_gb = forms.TypedChoiceField(
        required=False, choices=RAM_CHOICES, coerce=int, label="System RAM", initial=DEFAULTS["ram_gb"]
    )

    def __init__(self, data: Any = None, *args: Any, model: Model | None = None, **kwargs: Any) -> None:
        self.model = model
        if data is not None:
            # Missing knobs take their defaults, so the re-rendered form shows what the figures assume.
            data = data.copy()
            for name, default in {**self.DEFAULTS, "ctx": self.default_ctx}.items():
                if not data.get(name):
                    data[name] = default
        super().__init__(data, *args, **kwargs)
        self.fields["ctx"].widget.attrs["max"] = settings.RIGFIT_MAX_CTX
        self.fields["users"].widget.attrs["max"] = settings.RIGFIT_MAX_USERS

    def clean_ctx(self) -> int | None:
        ctx = self.cleaned_data.get("ctx")
        if ctx is not None and ctx > settings.RIGFIT_MAX_CTX:
            raise forms.ValidationError(f"Context can be at most {settings.RIGFIT_MAX_CTX:,} tokens.")
        return ctx

    def clean_users(self) -> int | None:
        users = self.cleaned_data.get("users")
        if users is not None and users > settings.RIGFIT_MAX_USERS:
            raise forms.ValidationError(f"At most {settings.RIGFIT_MAX_USERS} concurrent users.")
        return users

    @property
    def default_ctx(self) -> int:
        native = self.model.context_length if self.model else settings.RIGFIT_DEFAULT_CTX
        return min(settings.RIGFIT_DEFAULT_CTX, native)

    def value(self, name: str) -> Any:
        """The cleaned value, or the default when the field is empty or invalid (errors are still shown)."""
        data = self.cleaned_data if self.is_bound and hasattr(self, "cleaned_data") else {}
        value = data.get(name)
        if value not in (None, ""):
            return value
        return {**self.DEFAULTS, "ctx": self.default_ctx, "hardware": None}[name]

    def options(self) -> fit.FitOptions:
        if self.is_bound:
            self.is_valid()
        return fit.FitOptions(
            ctx=self.value("ctx"),
            kv_type=self.value("kv_type"),
            users=self.value("users"),
            system_ram_bytes=self.value("ram_gb") * GIB,
        )

    @property
    def selected_hardware(self) -> Hardware | None:
        if self.is_bound:
            self.is_valid()
        return self.value("hardware")


class ModelFilterForm(forms.Form):
    SORT_CHOICES = [
        ("params", "Size (small first)"),
        ("-params", "Size (large first)"),
        ("released", "Newest release"),
        ("name", "Name"),
        ("-context", "Longest context"),
        ("newest", "Recently updated here"),
    ]
    # Architecture features a visitor filters by (catalog.models.ModelQuerySet.with_feature); several narrow the list.
    FEATURE_CHOICES = [
        ("moe", "Mixture of experts"),
        ("vision", "Vision"),
        ("hybrid", "Hybrid (recurrent state)"),
        ("swa", "Sliding window"),
        ("mla", "Latent attention (MLA)"),
    ]
    RELEASED_CHOICES = [("", "Any time"), ("new", "New (last 90 days)"), ("year", "Last 12 months")]
    q = forms.CharField(required=False, max_length=100, label="Search")
    modality = forms.ChoiceField(required=False, choices=[("", "Any modality"), *Modality.choices])
    band = forms.ChoiceField(required=False, choices=[("", "Any size"), *ParamBand.choices], label="Parameters")
    feature = forms.MultipleChoiceField(
        required=False, choices=FEATURE_CHOICES, widget=forms.CheckboxSelectMultiple, label="Architecture"
    )
    released = forms.ChoiceField(required=False, choices=RELEASED_CHOICES, label="Released")
    license = forms.CharField(required=False, max_length=80)
    fits = HardwareSlugField(required=False, max_length=120, label="Fits on")
    # The shared hardware picker (home page) names its field "hardware": the same filter.
    hardware = HardwareSlugField(required=False, max_length=120, widget=forms.HiddenInput)
    ctx = forms.IntegerField(required=False, min_value=1, max_value=1_048_576, label="Context")
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["fits"] = data.get("fits") or data.get("hardware")
        return data

    ORDERING = {
        "params": ("n_params", "name"),
        "-params": ("-n_params", "name"),
        "released": (F("released").desc(nulls_last=True), "name"),
        "name": ("name",),
        "-context": ("-context_length", "n_params"),
        "newest": ("-updated_at",),
    }
    RELEASED_DAYS = {"new": NEW_MODEL_DAYS, "year": 365}


class HardwareFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *HardwareKind.choices])
    min_memory_gb = forms.IntegerField(required=False, min_value=0, max_value=4096, label="Min. memory (GB)")


class CompareForm(forms.Form):
    models = forms.CharField(required=False, max_length=500, help_text="Two to four model slugs.")

    def clean_models(self) -> list[str]:
        raw = self.data.getlist("models") if hasattr(self.data, "getlist") else [self.cleaned_data["models"]]
        slugs: list[str] = []
        for item in raw:
            for slug in str(item).split(","):
                slug = slug.strip()
                if slug and slug not in slugs:
                    slugs.append(slug[:120])
        if len(slugs) > 4:
            raise forms.ValidationError("Compare at most four models at once.")
        return slugs
