"""fit_batch fits every model x quant at once with numpy: each answer must be fit.fit's own for that model, quant,
device and (clamped) context, on the real seed catalog, and each pick services.pick_quant's."""

from __future__ import annotations

import dataclasses
import math
from io import StringIO

import pytest
from django.core.management import call_command

from catalog import fit, fit_batch, services
from catalog.models import Hardware
from catalog.speed import DEFAULT_SPEED, SpeedModel

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# A small and a large discrete GPU, unified memory small and large, a CPU board; one, two and four GPUs.
DEVICES = (
    ("nvidia-geforce-rtx-4060", 1),
    ("nvidia-geforce-rtx-4090", 1),
    ("nvidia-geforce-rtx-4090", 4),
    ("apple-m2-8gb", 1),
    ("apple-m2-ultra-192gb", 1),
    ("raspberry-pi-5-8gb", 1),
)
# Contexts below, at and off the 256-cell padding, beyond most models' maximum; the other settings a page can ask.
OPTIONS = (
    fit.FitOptions(ctx=4096),
    fit.FitOptions(ctx=513, users=3),
    fit.FitOptions(ctx=32768, kv_type="q8_0", system_ram_bytes=64 * 2**30),
    fit.FitOptions(ctx=131072, kv_type="q4_0", flash_attention=False),
    fit.FitOptions(ctx=1_000_000, users=2, swa_full=True, system_ram_bytes=8 * 2**30),
)


@pytest.fixture
def seeded(db):
    call_command("load_seed", stdout=StringIO())


def _same(batch: fit.FitResult, engine: fit.FitResult) -> None:
    """Bytes, verdicts and layer counts equal; speeds equal to 1e-9 relative (in practice the same float)."""
    speeds = ("est_decode_tps", "est_prefill_tps")
    for name in (f.name for f in dataclasses.fields(fit.FitResult)):
        mine, theirs = getattr(batch, name), getattr(engine, name)
        if name in speeds and mine is not None and theirs is not None:
            assert math.isclose(mine, theirs, rel_tol=1e-9), name
        else:
            assert mine == theirs, name


def _catalog() -> tuple[list[services.ModelFacts], fit_batch.Catalog]:
    facts = services.catalog_facts()
    return facts, services._batch_of(facts)


def test_it_runs_against_the_engine_it_was_checked_with():
    assert fit_batch.in_step(), (
        "catalog/fit.py or catalog/speed.py changed a function that catalog/fit_batch.py repeats: fit tables fall back "
        "to one fit.fit call per quant (slow, never wrong). Bring fit_batch in line, run this module, then set "
        f"fit_batch.MIRRORED_DIGEST = {fit_batch.mirrored_digest()!r}."
    )


@pytest.mark.parametrize(("slug", "count"), DEVICES)
def test_it_gives_the_engines_answer_for_every_model_and_quant(seeded, slug, count):
    facts, batch = _catalog()
    assert len(facts) >= 100 and not batch.fallback
    device = services.device_spec_of(Hardware.objects.get(slug=slug), count)
    speed = services.speed_model()
    verdicts = set()
    for options in OPTIONS:
        fits = fit_batch.fit_all(batch, device, options, speed)
        assert fits is not None
        results = fits.results(range(len(batch.row_model)))
        for row, result in enumerate(results):
            model = facts[int(batch.row_model[row])]
            quant = model.quants[int(batch.row_quant[row])]
            clamped, _ = fit.clamp_ctx(options.ctx, model.context_length)
            engine = fit.fit(model.shape, quant.spec, device, dataclasses.replace(options, ctx=clamped), speed)
            _same(result, engine)
            verdicts.add((result.verdict, result.cpu_moe_layers > 0))
    # The devices and settings reach every branch of the placement between them (checked per device below).
    assert verdicts


def test_it_reaches_every_placement_between_the_devices(seeded):
    _facts, batch = _catalog()
    seen = set()
    for slug, count in DEVICES:
        device = services.device_spec_of(Hardware.objects.get(slug=slug), count)
        for options in OPTIONS:
            fits = fit_batch.fit_all(batch, device, options, DEFAULT_SPEED)
            assert fits is not None
            for verdict, moe in zip(fits.verdict.tolist(), (fits.cpu_moe > 0).tolist(), strict=True):
                seen.add((device.kind, fit_batch.VERDICTS[verdict], moe))
    assert {
        ("gpu", fit.Verdict.FITS_GPU, False),
        ("gpu", fit.Verdict.PARTIAL_OFFLOAD, False),
        ("gpu", fit.Verdict.PARTIAL_OFFLOAD, True),  # a MoE's experts in host RAM (--n-cpu-moe)
        ("gpu", fit.Verdict.CPU_ONLY, False),
        ("gpu", fit.Verdict.DOES_NOT_FIT, False),
        ("unified", fit.Verdict.FITS_GPU, False),
        ("unified", fit.Verdict.PARTIAL_OFFLOAD, False),
        ("unified", fit.Verdict.DOES_NOT_FIT, False),
        ("cpu", fit.Verdict.CPU_ONLY, False),
        ("cpu", fit.Verdict.DOES_NOT_FIT, False),
    } <= seen


@pytest.mark.parametrize("allow_offload", [True, False])
def test_it_picks_what_pick_quant_picks(seeded, allow_offload):
    facts, _batch = _catalog()
    speed = services.speed_model()
    for slug, count in DEVICES:
        device = services.device_spec_of(Hardware.objects.get(slug=slug), count)
        for options in OPTIONS[:3]:
            fast = services.catalog_picks(device=device, options=options, allow_offload=allow_offload, speed=speed)
            slow = [
                (model, picked)
                for model in facts
                if (
                    picked := services.pick_quant(
                        model, device=device, options=options, allow_offload=allow_offload, speed=speed
                    )
                )
            ]
            assert [(m.model_id, p.quant, p.ctx, p.ctx_clamped, p.recommended) for m, p in fast] == [
                (m.model_id, p.quant, p.ctx, p.ctx_clamped, p.recommended) for m, p in slow
            ], (slug, options)
            for (_, mine), (_, theirs) in zip(fast, slow, strict=True):
                _same(mine.result, theirs.result)


def test_it_picks_the_fastest_when_no_quant_keeps_the_speed(seeded):
    """A speed model in which every CUDA step costs a second: no quant reaches 10 tok/s, so nothing is recommended
    and each model shows its fastest quant (fit.recommend's second choice), as pick_quant does."""
    slow = dataclasses.replace(DEFAULT_SPEED.params_for("cuda"), overhead_s=1.0)
    speed = SpeedModel(classes=(("cuda", slow),))
    facts, _ = _catalog()
    device = services.device_spec_of(Hardware.objects.get(slug="nvidia-geforce-rtx-4090"))
    options = fit.FitOptions(ctx=8192)
    fast = services.catalog_picks(device=device, options=options, allow_offload=True, speed=speed)
    assert fast and not any(p.recommended for _, p in fast)
    slow_picks = [
        services.pick_quant(m, device=device, options=options, allow_offload=True, speed=speed) for m in facts
    ]
    assert [(m.model_id, p.quant) for m, p in fast] == [
        (m.model_id, p.quant) for m, p in zip(facts, slow_picks, strict=True) if p
    ]


def test_it_leaves_a_model_fit_rejects_to_the_engine():
    good = fit.ModelShape(
        n_params=1_000_000_000, n_layers=16, hidden_size=2048, n_heads=16, n_kv_heads=4, head_dim=128, vocab_size=32000
    )
    bad = dataclasses.replace(good, n_layers=0)
    quant = fit_batch.QuantInput(fit.QuantSpec("Q8_0", 8.5), 8.5, None)
    batch = fit_batch.prepare([fit_batch.ModelInput(good, 8192, (quant,)), fit_batch.ModelInput(bad, 8192, (quant,))])
    assert batch.fallback == {1} and batch.row_model.tolist() == [0]


def test_it_answers_none_for_a_kv_type_a_models_rows_do_not_divide_into():
    """q8_0 packs 32 values a block: a head of 40 values (1 head x 40) cannot use it, and fit raises; the batch says
    None so the caller's one-by-one path raises the engine's own error."""
    shape = fit.ModelShape(
        n_params=100_000_000, n_layers=4, hidden_size=640, n_heads=16, n_kv_heads=1, head_dim=40, vocab_size=32000
    )
    batch = fit_batch.prepare(
        [fit_batch.ModelInput(shape, 4096, (fit_batch.QuantInput(fit.QuantSpec("F16"), 16.0, None),))]
    )
    device = fit.DeviceSpec(name="GPU", kind="gpu", memory_bytes=8 * 2**30, bandwidth_gbps=300.0)
    with pytest.raises(ValueError, match="divisible"):
        fit.fit(shape, fit.QuantSpec("F16"), device, fit.FitOptions(kv_type="q8_0"))
    assert fit_batch.fit_all(batch, device, fit.FitOptions(kv_type="q8_0"), DEFAULT_SPEED) is None
    assert fit_batch.fit_all(batch, device, fit.FitOptions(kv_type="f16"), DEFAULT_SPEED) is not None


def test_it_builds_the_same_table_one_by_one_when_the_engine_moved(seeded, monkeypatch):
    """The path tables take while fit_batch no longer matches the engine (in_step false): one pick_quant per model,
    row for row the same table."""
    from django.core.cache import cache

    hardware = Hardware.objects.get(slug="nvidia-geforce-rtx-4060")
    options = fit.FitOptions(ctx=16384)
    batched = services.fit_entries(services.fit_table(hardware=hardware, options=options))
    cache.clear()
    calls = []
    real = services.pick_quant
    monkeypatch.setattr(fit_batch, "in_step", lambda: False)
    monkeypatch.setattr(services, "pick_quant", lambda facts, **kw: calls.append(facts) or real(facts, **kw))
    one_by_one = services.fit_entries(services.fit_table(hardware=hardware, options=options))
    assert len(calls) == len(services.catalog_facts())
    assert [dataclasses.astuple(e) for e in one_by_one] == [dataclasses.astuple(e) for e in batched]
