"""Write paths of the benchmarks app: submit, moderate, tokens, rate limits. Keyword-only, typed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission
from django.core.cache import caches
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone
from redis.exceptions import RedisError

from benchmarks import llamabench, outliers
from benchmarks.forms import RunForm
from benchmarks.models import (
    ApiToken,
    BenchmarkRun,
    Channel,
    ModerationDecision,
    RateCount,
    Status,
    hash_token,
)
from catalog import fit, speed
from catalog.models import Hardware, Model, Quantization
from catalog.services import device_spec_of, quant_spec_of, shape_of
from config.clients import client_ip

log = logging.getLogger(__name__)

# A decode speed above the roofline (bandwidth / bytes read per token, efficiency 1.0) times this margin is
# flagged. The margin absorbs what the roofline cannot know: caches holding part of the weights on small models,
# a vendor's bandwidth figure rounded down. Setting: RIGFIT_BENCH_ROOFLINE_MARGIN.
DEFAULT_ROOFLINE_MARGIN = 1.15
# A prompt speed above the compute ceiling (the device's stated peak matrix rate over the weight FLOPs per token,
# catalog.speed.roofline_prefill_tps) times this margin is flagged. The margin is wider than decode's: where a device
# states only a shader FP16 or FP32 SIMD figure, llama.cpp's INT8 kernels can run above it (an H100 SXM's dense INT8
# tensor rate is about 15x its non-tensor FP16 rate); junk such as 999,999 t/s is still far beyond it.
# Setting: RIGFIT_BENCH_PREFILL_MARGIN.
DEFAULT_PREFILL_MARGIN = 2.0
# Rate limits, sliding windows: (runs, seconds). Settings: RIGFIT_BENCH_RATE_IP, RIGFIT_BENCH_RATE_TOKEN.
DEFAULT_RATE_IP = (30, 3600)
DEFAULT_RATE_TOKEN = (300, 3600)
# The most runs (llama-bench tests) one request may carry. Setting: RIGFIT_BENCH_MAX_RUNS_PER_REQUEST.
DEFAULT_MAX_RUNS_PER_REQUEST = 50
TOKEN_PREFIX = "rfb_"


# --- clients, tokens and rate limits ------------------------------------------------------------------------------


class RateLimited(Exception):
    def __init__(self, retry_after: int, message: str = "") -> None:
        super().__init__(message or f"Too many submissions; retry in {retry_after} s.")
        self.retry_after = retry_after


class LimiterUnavailable(Exception):
    """The rate limiter's store (Redis) is unreachable: submissions are refused (fail closed) until it is back."""

    retry_after = 30

    def __init__(self) -> None:
        super().__init__("Submissions are paused: the rate limiter's store is unreachable. Please retry shortly.")


def _limits() -> Any:
    """The cache the counts live in: the "limits" alias, which raises when its store is unreachable."""
    return caches["limits"] if "limits" in settings.CACHES else caches["default"]


class _CacheCounts:
    """Counts in the "limits" cache (Redis in production): atomic increments, expiry by the cache."""

    def incr(self, key: str, cost: int, timeout: int) -> int:
        store = _limits()
        store.add(key, 0, timeout=timeout)
        try:
            return store.incr(key, cost)
        except ValueError:  # expired between add and incr
            store.set(key, cost, timeout=timeout)
            return cost

    def get(self, key: str) -> int:
        return _limits().get(key, 0)

    def decr(self, key: str, cost: int) -> None:
        _limits().decr(key, cost)


class _DatabaseCounts:
    """Counts in the database (RateCount rows): shared by every worker and host without Redis. The increment is one
    UPDATE ... SET count = count + n, atomic under concurrent writers; expired windows are deleted as new ones start."""

    def incr(self, key: str, cost: int, timeout: int) -> int:
        expires_at = timezone.now() + timedelta(seconds=timeout)
        with transaction.atomic():
            _row, created = RateCount.objects.get_or_create(key=key, defaults={"count": 0, "expires_at": expires_at})
            RateCount.objects.filter(key=key).update(count=F("count") + cost)
            count = RateCount.objects.filter(key=key).values_list("count", flat=True).get()
        if created:
            RateCount.objects.filter(expires_at__lt=timezone.now()).delete()
        return count

    def get(self, key: str) -> int:
        found = (
            RateCount.objects.filter(key=key, expires_at__gte=timezone.now()).values_list("count", flat=True).first()
        )
        return found or 0

    def decr(self, key: str, cost: int) -> None:
        RateCount.objects.filter(key=key).update(count=F("count") - cost)


def _counts() -> _CacheCounts | _DatabaseCounts:
    """RIGFIT_BENCH_RATE_STORE: "cache" (the limits alias) or "database"."""
    return _DatabaseCounts() if getattr(settings, "RIGFIT_BENCH_RATE_STORE", "cache") == "database" else _CacheCounts()


def check_rate(*, scope: str, key: str, limit: tuple[int, int], cost: int = 1, now: float | None = None) -> str:
    """Count `cost` (runs, or one request) against `key`; raise RateLimited when it would exceed `limit` (count,
    seconds), LimiterUnavailable when the counts cannot be read or written. Returns the key charged, for
    `refund_rate`.

    A sliding window, estimated from two fixed ones (the current and the previous, weighted by how much of it still
    lies within the last `seconds`): a fixed window alone lets a client send twice the limit across a boundary.
    Refused requests are not counted, so a client that keeps retrying is let in as soon as its old requests age out.
    """
    count_max, window = limit
    now = time.time() if now is None else now
    if cost > count_max:
        raise RateLimited(window, f"This request holds {cost} runs; the limit is {count_max} every {window} s.")
    slot = int(now // window)
    prefix = f"bench:rate:{scope}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    current_key = f"{prefix}:{slot}"
    counts = _counts()
    try:
        current = counts.incr(current_key, cost, 2 * window + 1)  # read again as the previous window
        previous = counts.get(f"{prefix}:{slot - 1}")
    except (RedisError, OSError, DatabaseError) as exc:
        log.error("Rate limiter store unreachable; refusing submissions: %s", exc)
        raise LimiterUnavailable from exc
    elapsed = (now % window) / window
    if current + previous * (1 - elapsed) <= count_max:
        return current_key
    refund_rate(current_key, cost)  # refused: not counted
    raise RateLimited(_seconds_until_admitted(current - cost, previous, count_max, window, now, cost))


def refund_rate(key: str, cost: int) -> None:
    with contextlib.suppress(ValueError, RedisError, OSError, DatabaseError):
        _counts().decr(key, cost)


def _seconds_until_admitted(current: int, previous: int, count_max: int, window: int, now: float, cost: int = 1) -> int:
    """When `cost` more fit the sliding estimate, with nothing else counted in between."""
    start = now - now % window
    room = count_max - current - cost  # what the previous window's weighted share may still be
    if room >= 0 and previous > 0:
        at = start + window * (1 - room / previous)  # later in this window, as the previous one fades
    else:  # in the next window, once this window's count (then the fading share) leaves room
        fade = max(0.0, 1 - (count_max - cost) / current) if current else 0.0
        at = start + window * (1 + fade)
    return max(1, math.ceil(at - now))


def max_runs_per_request() -> int:
    return int(getattr(settings, "RIGFIT_BENCH_MAX_RUNS_PER_REQUEST", DEFAULT_MAX_RUNS_PER_REQUEST))


def check_submission_rate(
    *, request: HttpRequest, token: ApiToken | None = None, runs: int = 1, now: float | None = None
) -> None:
    """Charge a submission of `runs` runs to its client; raise RateLimited when a limit would be exceeded.

    Limits count runs, not requests (one llama-bench output can hold many tests). A signed-in submitter (API token
    or session) is charged per user, whatever token it uses, against RIGFIT_BENCH_RATE_TOKEN; their address is
    charged one per request against RIGFIT_BENCH_RATE_IP. An anonymous submitter's address is charged every run.
    A request refused by one limit is refunded to the other."""
    user = token.user if token is not None else getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    ip_limit = getattr(settings, "RIGFIT_BENCH_RATE_IP", DEFAULT_RATE_IP)
    ip_cost = 1 if signed_in else runs
    ip_key = check_rate(scope="ip", key=client_ip(request), limit=ip_limit, cost=ip_cost, now=now)
    if not signed_in:
        return
    try:
        check_rate(
            scope="user",
            key=str(user.pk),
            limit=getattr(settings, "RIGFIT_BENCH_RATE_TOKEN", DEFAULT_RATE_TOKEN),
            cost=runs,
            now=now,
        )
    except RateLimited:
        refund_rate(ip_key, ip_cost)
        raise


def token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`: the stored row (hash only) and the raw token, to be shown once."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name, prefix=raw[:10], token_hash=hash_token(raw))
    token.full_clean()
    token.save()
    return token, raw


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def token_authenticate(*, raw: str) -> ApiToken | None:
    if not raw:
        return None
    token = ApiToken.objects.active().select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


# --- matching -------------------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def match_hardware(name: str) -> Hardware | None:
    """A catalog device by slug, name, vendor + name, or alias (case, spaces and punctuation ignored)."""
    wanted = _norm(name)
    if not wanted:
        return None
    direct = Hardware.objects.filter(Q(slug=name.strip()) | Q(name__iexact=name.strip())).first()
    if direct is not None:
        return direct
    for hardware in Hardware.objects.only("slug", "name", "vendor", "aliases"):
        names = [hardware.slug, hardware.name, f"{hardware.vendor} {hardware.name}", *(hardware.aliases or [])]
        if any(_norm(str(candidate)) == wanted for candidate in names):
            return hardware
    return None


def match_quant(model: Model, name: str) -> Quantization | None:
    return Quantization.objects.filter(model=model, name__iexact=name).order_by("format").first()


class Unrecognised(ValueError):
    pass


def recognise_model(record_identity: llamabench.Identity) -> Model:
    """The catalog model a llama-bench record ran: by the quant's published file name, else by its parameter count
    (llama-bench's model_n_params counts the GGUF's own tensors) and the file name's words."""
    if record_identity.filename:
        quant = Quantization.objects.select_related("model").filter(file_name__iexact=record_identity.filename).first()
        if quant is not None:
            return quant.model
    candidates = list(Model.objects.all())
    words = _norm(record_identity.filename + " " + record_identity.model_type)
    if record_identity.n_params:
        exact = [m for m in candidates if m.n_params == record_identity.n_params]
        if len(exact) == 1:
            return exact[0]
        close = [m for m in candidates if abs(m.n_params - record_identity.n_params) <= 0.05 * m.n_params]
        named = [m for m in close if _norm(m.family) in words or _norm(m.slug).startswith(_norm(m.family))]
        named = [m for m in named if _norm(m.family) in words] or close
        if len(named) == 1:
            return named[0]
    by_slug = [m for m in candidates if _norm(m.slug) and _norm(m.slug) in words]
    if len(by_slug) == 1:
        return by_slug[0]
    raise Unrecognised(
        f"Could not recognise the model from '{record_identity.filename or record_identity.model_type}'"
        f" ({record_identity.n_params or 'unknown'} parameters); choose it in the form."
    )


# --- submitting ------------------------------------------------------------------------------------------------------


class Duplicate(Exception):
    """The same payload is stored already. `run_id` names it only to its own submitter (None to anyone else)."""

    def __init__(self, run_id: int | None) -> None:
        super().__init__("This run was submitted before.")
        self.run_id = run_id


class Invalid(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("Invalid input.")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str
    reason: str
    roofline_tps: float | None = None
    z_score: float | None = None
    checks: list[str] = field(default_factory=list)
    prefill_ceiling_tps: float | None = None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Model | Hardware | Quantization):
        return value.slug if hasattr(value, "slug") else value.pk
    return str(value)


def payload_sha256(cleaned: dict[str, Any]) -> str:
    """A fingerprint of what was measured: the same run sent twice (any channel, any sender) has the same one."""
    data = {k: v for k, v in cleaned.items() if k not in {"notes"} and v not in (None, "", [])}
    data["model_slug"] = cleaned["model_slug"].slug
    data["hardware"] = _norm(str(cleaned["hardware"]))
    blob = json.dumps(data, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def roofline_for(run: BenchmarkRun) -> float | None:
    """The physical decode limit for this run's model, quant and hardware, or None when it cannot be known."""
    if run.hardware is None:
        return None
    quant = quant_spec_of(run.quantization) if run.quantization else fit.QuantSpec(name=run.quant_name)
    if quant.bits_per_weight is None and quant.file_bytes is None and fit.nominal_bits_per_weight(quant.name) is None:
        return None
    kv_type = run.type_k if run.type_k in ("f32", "f16", "bf16", "q8_0", "q4_0") else "f16"
    ctx = max(1, run.n_depth + run.n_prompt)
    try:
        return fit.roofline_decode_tps(
            shape_of(run.model), quant, run.hardware.bandwidth_gbps, ctx=ctx, kv_type=kv_type
        )
    except ValueError:
        log.warning("No roofline for run of %s %s", run.model, run.quant_name, exc_info=True)
        return None


def prefill_ceiling_for(run: BenchmarkRun) -> float | None:
    """The compute limit of prompt processing for this run's model on its hardware, or None when the device states
    no compute figure (or the quant is unknown)."""
    if run.hardware is None or not _quant_known(run):
        return None
    quant = quant_spec_of(run.quantization) if run.quantization else fit.QuantSpec(name=run.quant_name)
    try:
        return speed.roofline_prefill_tps(
            shape_of(run.model), quant, device_spec_of(run.hardware), n_prompt=max(1, run.n_prompt)
        )
    except ValueError:
        log.warning("No prefill ceiling for run of %s %s", run.model, run.quant_name, exc_info=True)
        return None


def _quant_known(run: BenchmarkRun) -> bool:
    return run.quantization is not None or fit.nominal_bits_per_weight(run.quant_name) is not None


def _physics(run: BenchmarkRun) -> tuple[Verdict | None, float | None, float | None, list[str]]:
    """Check the run's speeds against physics: (a verdict when it cannot stand as is, decode roofline, prefill
    ceiling, the checks passed). Decode is bounded by bandwidth, prompt processing by compute; a speed that cannot be
    checked (unknown quant, no compute figure, a combined pp+tg rate) holds the run for review."""
    checks: list[str] = []
    if not _quant_known(run):
        reason = f"Quantization '{run.quant_name}' is unknown, so its speed cannot be checked; held for review."
        return Verdict(Status.PENDING, reason), None, None, checks
    if run.hardware is None:
        return None, None, None, checks  # held for review later on, for the hardware
    roofline = roofline_for(run)
    ceiling = prefill_ceiling_for(run) if run.prefill_tps is not None else None
    if run.decode_tps is not None:
        margin = float(getattr(settings, "RIGFIT_BENCH_ROOFLINE_MARGIN", DEFAULT_ROOFLINE_MARGIN))
        if roofline is None:
            reason = "The decode speed cannot be checked against the device's bandwidth; held for review."
            return Verdict(Status.PENDING, reason), None, ceiling, checks
        if run.decode_tps > roofline * margin:
            reason = (
                f"Decode {run.decode_tps:.1f} t/s is above the physical limit of {roofline:.1f} t/s "
                f"({run.hardware.bandwidth_gbps:g} GB/s over the bytes read per token) x {margin:g}."
            )
            return Verdict(Status.FLAGGED, reason, roofline_tps=roofline), roofline, ceiling, checks
        checks.append(f"decode within the roofline ({roofline:.1f} t/s)")
    if run.prefill_tps is not None:
        margin = float(getattr(settings, "RIGFIT_BENCH_PREFILL_MARGIN", DEFAULT_PREFILL_MARGIN))
        if ceiling is None:
            reason = (
                f"{run.hardware.name} states no compute figure, so the prompt speed cannot be checked; held for review."
            )
            return Verdict(Status.PENDING, reason, roofline_tps=roofline), roofline, None, checks
        if run.prefill_tps > ceiling * margin:
            reason = (
                f"Prompt processing {run.prefill_tps:.1f} t/s is above the compute limit of {ceiling:.1f} t/s "
                f"(the device's peak matrix rate over the FLOPs per token) x {margin:g}."
            )
            verdict = Verdict(Status.FLAGGED, reason, roofline_tps=roofline, prefill_ceiling_tps=ceiling)
            return verdict, roofline, ceiling, checks
        checks.append(f"prompt speed within the compute limit ({ceiling:.1f} t/s)")
    if run.decode_tps is None and run.prefill_tps is None:
        reason = (
            "A prompt + generation test without prompt_tps reports llama-bench's combined rate, which no limit "
            "checks; held for review (send prompt_tps, or the pp and tg tests apart)."
        )
        return Verdict(Status.PENDING, reason, roofline_tps=roofline), roofline, ceiling, checks
    return None, roofline, ceiling, checks


def assess(run: BenchmarkRun, *, trusted: bool) -> Verdict:
    """The status a new run starts in, and why: physics first, then the group's outlier rule, then review."""
    refused, roofline, ceiling, checks = _physics(run)
    if refused is not None:
        return refused
    z = None
    if run.hardware_id is not None:
        rows = list(
            BenchmarkRun.objects.accepted()
            .for_group(
                hardware_id=run.hardware_id,
                model_id=run.model_id,
                quantization_id=run.quantization_id,
                runtime=run.runtime,
                backend=run.backend,
            )
            .filter(n_prompt=run.n_prompt, n_gen=run.n_gen, n_depth=run.n_depth)
            .values_list("submitter_id", "avg_ts")
        )
        # One vote per submitter (their median): a flood from one account cannot move the baseline.
        others = outliers.one_vote_each(rows)
        flagged, z = outliers.is_outlier(run.avg_ts, others)
        if flagged:
            return Verdict(
                Status.FLAGGED,
                f"Outlier among {len(others)} submitters' runs of the same setup (modified z-score {z:+.1f}, limit "
                f"±{outliers.THRESHOLD}).",
                roofline_tps=roofline,
                z_score=z,
                prefill_ceiling_tps=ceiling,
            )
        if z is not None:
            checks.append(f"modified z-score {z:+.1f} among {len(others)} submitters' runs")
    if run.hardware_id is None:
        return Verdict(
            Status.PENDING,
            f"Hardware '{run.hardware_name}' is not in the catalog; held for review.",
            roofline,
            z,
            checks,
            ceiling,
        )
    if not trusted:
        return Verdict(
            Status.PENDING, "Anonymous submission; a moderator will review it.", roofline, z, checks, ceiling
        )
    return Verdict(Status.ACCEPTED, "Passed the automatic checks.", roofline, z, checks, ceiling)


def build_run(*, cleaned: dict[str, Any]) -> BenchmarkRun:
    """An unsaved run from `RunForm.cleaned_data`, matched to the catalog, speeds derived."""
    model: Model = cleaned["model_slug"]
    hardware = match_hardware(cleaned["hardware"])
    run = BenchmarkRun(
        model=model,
        quant_name=cleaned["quant"],
        quantization=match_quant(model, cleaned["quant"]),
        hardware=hardware,
        hardware_name=cleaned["hardware"],
    )
    skip = {"model_slug", "quant", "hardware"}
    for name, value in cleaned.items():
        if name in skip:
            continue
        if value is None and not BenchmarkRun._meta.get_field(name).null:
            continue
        setattr(run, name, value)
    run.derive_speeds()
    return run


def preview(*, cleaned: dict[str, Any], trusted: bool) -> tuple[BenchmarkRun, Verdict]:
    """What would happen to a submission, without storing anything."""
    run = build_run(cleaned=cleaned)
    return run, assess(run, trusted=trusted)


def submit_run(
    *,
    data: dict[str, Any],
    channel: str,
    submitter: AbstractBaseUser | AnonymousUser | None,
) -> tuple[BenchmarkRun, Verdict]:
    """Validate, check and store one run. Raises Invalid (field errors) or Duplicate (same payload stored)."""
    form = RunForm(data)
    if not form.is_valid():
        raise Invalid({name: [str(m) for m in messages] for name, messages in form.errors.items()})
    return submit_cleaned(cleaned=form.cleaned_data, channel=channel, submitter=submitter)


def submit_cleaned(
    *,
    cleaned: dict[str, Any],
    channel: str,
    submitter: AbstractBaseUser | AnonymousUser | None,
) -> tuple[BenchmarkRun, Verdict]:
    user = submitter if submitter is not None and submitter.is_authenticated else None
    run = build_run(cleaned=cleaned)
    run.submitter = user
    run.channel = channel
    run.payload_sha256 = payload_sha256(cleaned)
    trusted = user is not None or channel == Channel.SEED
    verdict = assess(run, trusted=trusted)
    run.status, run.status_reason = verdict.status, verdict.reason[:300]
    try:
        # The unique payload_sha256 constraint makes this atomic: of two identical submissions racing, the
        # database lets one insert through and the other gets IntegrityError.
        with transaction.atomic():
            run.save()
            ModerationDecision.objects.create(
                run=run, moderator=None, from_status="", to_status=run.status, reason=run.status_reason
            )
    except IntegrityError:
        existing = (
            BenchmarkRun.objects.filter(payload_sha256=run.payload_sha256).values_list("pk", "submitter_id").first()
        )
        if existing is None:
            raise
        pk, owner_id = existing
        # Another user's run is not named: its id would lead to a pending or rejected run they have not published.
        raise Duplicate(pk if user is not None and owner_id == user.pk else None) from None
    return run, verdict


@dataclass(frozen=True, slots=True)
class BatchResult:
    stored: list[tuple[BenchmarkRun, Verdict]]
    duplicates: list[int | None]
    errors: list[str]


def submit_llama_bench(
    *,
    text: str,
    hardware: str,
    channel: str,
    submitter: AbstractBaseUser | AnonymousUser | None,
    model_slug: str = "",
    quant: str = "",
    extra: dict[str, Any] | None = None,
    charge: Callable[[int], None] | None = None,
) -> BatchResult:
    """Every test in llama-bench output becomes a run. Raises llamabench.LlamaBenchError or Unrecognised when the
    output cannot be read; per-test problems are returned in `errors` (with the test number).

    `charge` is called with the number of tests once the output is read and before anything is stored (the rate
    limit: it raises RateLimited to refuse). More than RIGFIT_BENCH_MAX_RUNS_PER_REQUEST tests are refused."""
    records = llamabench.parse(text)
    cap = max_runs_per_request()
    if len(records) > cap:
        raise llamabench.LlamaBenchError(
            f"The output holds {len(records)} tests; at most {cap} per submission (send the rest separately)."
        )
    if charge is not None:
        charge(len(records))
    stored: list[tuple[BenchmarkRun, Verdict]] = []
    duplicates: list[int | None] = []
    errors: list[str] = []
    for index, record in enumerate(records, start=1):
        ident = llamabench.identity(record)
        slug = model_slug or recognise_model(ident).slug
        quant_name = quant or ident.quant
        if not quant_name:
            raise Unrecognised("Could not recognise the quantization from the output; enter it in the form.")
        data = {**llamabench.form_data(record), **(extra or {}), "model_slug": slug, "quant": quant_name}
        data["hardware"] = hardware
        try:
            stored.append(submit_run(data=data, channel=channel, submitter=submitter))
        except Invalid as exc:
            for name, messages in exc.errors.items():
                errors.extend(f"Test {index} ({name}): {message}" for message in messages)
        except Duplicate as exc:
            duplicates.append(exc.run_id)
    return BatchResult(stored=stored, duplicates=duplicates, errors=errors)


MODERATORS_GROUP = "Benchmark moderators"
MODERATE_PERMISSION = "benchmarks.moderate_benchmarkrun"


def moderators_group() -> Group:
    """The group that holds the moderate permission (made by migration 0004; made again here if it was removed)."""
    group, _ = Group.objects.get_or_create(name=MODERATORS_GROUP)
    app_label, codename = MODERATE_PERMISSION.split(".")
    group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


def run_visible_to(*, run: BenchmarkRun, user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Rejected runs stay visible to their submitter and to moderators (the moderate permission) only, on the page
    and in the API."""
    if run.status != Status.REJECTED:
        return True
    if user is None or not user.is_authenticated:
        return False
    return run.submitter_id == user.pk or user.has_perm(MODERATE_PERMISSION)


# --- moderation -----------------------------------------------------------------------------------------------------


def moderate(*, run: BenchmarkRun, moderator: AbstractBaseUser, decision: str, reason: str) -> ModerationDecision:
    """Accept or reject a run, recording who decided, from which status, and why."""
    if decision not in (Status.ACCEPTED, Status.REJECTED):
        raise ValueError(f"Unknown decision {decision!r}")
    reason = reason.strip()
    if not reason:
        raise ValueError("A reason is required.")
    with transaction.atomic():
        locked = BenchmarkRun.objects.select_for_update().get(pk=run.pk)
        record = ModerationDecision.objects.create(
            run=locked, moderator=moderator, from_status=locked.status, to_status=decision, reason=reason[:300]
        )
        locked.status, locked.status_reason = decision, reason[:300]
        locked.save(update_fields=["status", "status_reason"])
    run.status, run.status_reason = locked.status, locked.status_reason
    return record
