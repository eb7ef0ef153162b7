"""catalog.services, the bridge between catalog rows and the fit engine: the tests mutation testing asked for
(issue 14, docs/testing.md). Each expected value is written from the rows the test made (a field copied across),
a hand calculation written out here, or a law the docs state (docs/fit.md: with N GPUs each keeps its own compute
buffer and runtime overhead, so the usable memory is N x (memory - overhead)); never from the function's own
answer fed back."""

from __future__ import annotations

import pytest

from catalog import extensions, fit, services
from catalog.models import HardwareKind
from catalog.speed import DEFAULT_SPEED, SpeedModel
from tests.factories import make_hardware, make_model, make_quantization

GIB = 1024**3
pytestmark = pytest.mark.django_db


def _options(ctx: int = 4096) -> fit.FitOptions:
    return fit.FitOptions(ctx=ctx)


# --- the dataclasses handed to the engine: every field copied from the row --------------------------------------------


def test_it_hands_the_engine_every_field_of_the_model_row():
    model = make_model(
        n_params=1_000_000_001,
        n_layers=7,
        hidden_size=640,
        n_heads=5,
        n_kv_heads=1,
        head_dim=128,
        vocab_size=32_003,
        intermediate_size=2_048,
        tied_embeddings=True,
        sliding_window=512,
        swa_layers=[0, 1, 3],
        kv_lora_rank=None,
        n_active_params=400_000_001,
        n_experts=8,
        n_experts_used=2,
        vision_params=12_345,
        image_tokens=256,
        attention_layers=[0, 1, 2, 3, 4],
        recurrent_layers=[5, 6],
        recurrent_state_values=777,
        kv_heads_per_layer=[1, 1, 1, 1, 1, 0, 0],
    )
    assert services.shape_of(model) == fit.ModelShape(
        n_params=1_000_000_001,
        n_layers=7,
        hidden_size=640,
        n_heads=5,
        n_kv_heads=1,
        head_dim=128,
        vocab_size=32_003,
        intermediate_size=2_048,
        tied_embeddings=True,
        sliding_window=512,
        swa_layers=frozenset({0, 1, 3}),
        kv_lora_rank=None,
        qk_rope_head_dim=None,
        n_active_params=400_000_001,
        n_experts=8,
        n_experts_used=2,
        vision_params=12_345,
        image_tokens=256,
        attention_layers=frozenset({0, 1, 2, 3, 4}),
        recurrent_layers=frozenset({5, 6}),
        recurrent_state_values=777,
        kv_heads_per_layer=(1, 1, 1, 1, 1, 0, 0),
    )


def test_it_reads_an_mla_models_ranks_and_empty_optional_fields_as_the_engines_defaults():
    model = make_model(kv_lora_rank=512, qk_rope_head_dim=64)
    shape = services.shape_of(model)
    assert (shape.kv_lora_rank, shape.qk_rope_head_dim) == (512, 64)
    # A dense text model: no vision encoder, no image tokens, every layer attention, no recurrent state.
    assert shape.vision_params == 0 and shape.image_tokens == 0
    assert shape.attention_layers is None and shape.recurrent_layers == frozenset()
    assert shape.recurrent_state_values == 0 and shape.kv_heads_per_layer == () and shape.swa_layers == frozenset()


def test_it_hands_the_engine_the_quants_name_bits_and_exact_size():
    model = make_model()
    assert services.quant_spec_of(make_quantization(model, name="Q6_K", bits_per_weight=6.56)) == fit.QuantSpec(
        name="Q6_K", bits_per_weight=6.56, file_bytes=None
    )
    sized = make_quantization(model, name="IQ4_XS", bits_per_weight=None, file_bytes=4_447_671_296)
    assert services.quant_spec_of(sized) == fit.QuantSpec(name="IQ4_XS", bits_per_weight=None, file_bytes=4_447_671_296)


def test_it_hands_the_engine_every_field_of_the_hardware_row():
    hardware = make_hardware(
        name="H200 SXM",
        vendor="NVIDIA",
        memory_bytes=141 * 10**9,
        bandwidth_gbps=4800.0,
        fp16_tflops=267.6,
        generation="Hopper",
        matrix_tflops=989.4,
        int8_tops=1979.0,
        clock_mhz=1980.0,
        fp32_tflops=66.9,
    )
    expected = dict(
        name="H200 SXM",
        kind="gpu",
        memory_bytes=141 * 10**9,
        bandwidth_gbps=4800.0,
        fp16_tflops=267.6,
        vendor="NVIDIA",
        generation="Hopper",
        matrix_tflops=989.4,
        int8_tops=1979.0,
        clock_mhz=1980.0,
        fp32_tflops=66.9,
    )
    assert services.device_spec_of(hardware) == fit.DeviceSpec(count=1, **expected)  # one GPU unless told
    assert services.device_spec_of(hardware, 4) == fit.DeviceSpec(count=4, **expected)


def test_it_uses_the_types_nominal_bits_where_the_quant_states_none():
    model = make_model()
    # llama.cpp's quantize tool (tools/quantize/quantize.cpp QUANT_OPTIONS) quotes each type's file size at
    # Llama-3-8B (8,030,261,248 parameters): Q8_0 7.96 GiB, Q4_0 4.34 GiB, Q5_0 5.21 GiB. Bits per weight =
    # GiB x 2^30 x 8 / parameters: Q8_0 7.96 x 8,589,934,592 / 8,030,261,248 = 8.5148; Q4_0 4.6425; Q5_0 5.5731.
    assert services.effective_bits(make_quantization(model, name="Q8_0", bits_per_weight=None)) == 8.515
    assert services.effective_bits(make_quantization(model, name="Q4_0", bits_per_weight=None)) == 4.642
    assert services.effective_bits(make_quantization(model, name="Q6_K", bits_per_weight=6.6)) == 6.6  # its own
    choice = services.quant_choice(
        make_quantization(model, name="Q5_0", bits_per_weight=None, perplexity_delta=0.0415), result=None
    )
    assert (choice.name, choice.bits_per_weight, choice.perplexity_delta) == ("Q5_0", 5.573, 0.0415)


# --- one fit and its context: the GPU count reaches the engine --------------------------------------------------------


def test_it_fits_on_one_gpu_unless_told_and_counts_every_gpus_memory_when_told():
    model = make_model()
    quant = make_quantization(model, name="Q4_K_M", bits_per_weight=4.89)
    gpu = make_hardware(memory_bytes=24 * GIB)
    one = services.fit_for(model=model, quant=quant, hardware=gpu, options=_options())
    # usable = memory - runtime overhead (docs/fit.md "Placement"): 24 GiB less one overhead.
    assert one.usable_bytes == 24 * GIB - one.memory.overhead_bytes
    two = services.fit_for(model=model, quant=quant, hardware=gpu, options=_options(), gpu_count=2)
    # Two GPUs: each lends its 24 GiB less its own overhead (the overhead does not depend on the count).
    assert two.usable_bytes == 2 * (24 * GIB - one.memory.overhead_bytes)
    assert two.memory.overhead_bytes == 2 * one.memory.overhead_bytes


def test_it_finds_a_longer_context_on_two_gpus_and_one_gpu_unless_told():
    # Llama 3.1 8B (config.json: 32 layers, 8 KV heads of 128, vocabulary 128,256, hidden 4,096) at F16 on 20 GiB
    # GPUs. F16 weights, 2 bytes x 8,030,261,248 parameters = 16,060,522,496 bytes, of which the token embeddings,
    # 128,256 x 4,096 x 2 = 1,050,673,152, stay in host memory (llama.cpp's input layer); compute buffer with flash
    # attention 512 x (128,256 + 2 x 4,096) x 4 = 279,445,504; overhead 400 MiB + 128,256 x 4 = 419,943,424 off the
    # 21,474,836,480 bytes; KV per cell = 2 (K and V) x 32 layers x 8 heads x 128 x 2 bytes = 131,072. Room for
    # (21,474,836,480 - 419,943,424 - 16,060,522,496 + 1,050,673,152 - 279,445,504) / 131,072 = 43,988 cells, so
    # 43,776 tokens (171 x 256), well under the model's 131,072; a second GPU holds the whole 131,072.
    model = make_model()
    quant = make_quantization(model, name="F16", bits_per_weight=16.0)
    gpu = make_hardware(memory_bytes=20 * GIB)
    one = services.max_context_for(model=model, quant=quant, hardware=gpu, options=_options())
    assert one == 43_776
    assert services.max_context_for(model=model, quant=quant, hardware=gpu, options=_options(), gpu_count=1) == one
    assert services.max_context_for(model=model, quant=quant, hardware=gpu, options=_options(), gpu_count=2) == 131_072


def test_it_clamps_a_context_above_the_models_maximum_and_says_so():
    model = make_model(context_length=8192)
    options, clamped = services.options_for(model=model, options=_options(ctx=32_768))
    assert (options.ctx, clamped) == (8192, True)
    assert options.kv_type == "f16" and options.users == 1  # the rest unchanged
    same = _options(ctx=8192)
    assert services.options_for(model=model, options=same) == (same, False)


# --- the quant table --------------------------------------------------------------------------------------------------


def test_it_lists_every_quant_largest_first_with_its_verdict_and_bits():
    model = make_model()
    make_quantization(model, name="Q2_K", bits_per_weight=None)
    make_quantization(model, name="F16", bits_per_weight=16.0)
    make_quantization(model, name="Q8_0", bits_per_weight=8.5)
    make_quantization(model, name="IQ4_XS", bits_per_weight=None, file_bytes=4_447_671_296)
    gpu = make_hardware(memory_bytes=12 * GIB)
    rows = services.quant_rows(model=model, hardware=gpu, options=_options())
    # 8.03e9 parameters: F16 ~16.1 GB, Q8_0 ~8.5 GB, IQ4_XS 4.45 GB (its file), Q2_K ~3 GB: largest first.
    assert [row.quant.name for row in rows] == ["F16", "Q8_0", "IQ4_XS", "Q2_K"]
    assert [row.bits_per_weight for row in rows][:2] == [16.0, 8.5]
    assert [row.bits_estimated for row in rows] == [False, False, True, True]
    assert rows[2].size_bytes == 4_447_671_296 and not rows[2].size_estimated  # the file's own size
    assert rows[3].size_estimated  # Q2_K: no file, no bits: estimated from the type
    # F16 (16 GB) does not fit in 12 GiB: partial offload; Q8_0 (8.5 GB + 0.5 GiB KV) fits.
    assert [row.result.verdict for row in rows] == [
        fit.Verdict.PARTIAL_OFFLOAD,
        fit.Verdict.FITS_GPU,
        fit.Verdict.FITS_GPU,
        fit.Verdict.FITS_GPU,
    ]
    assert rows[0].max_ctx is None and rows[1].max_ctx is not None and rows[1].max_ctx >= 4096
    # The CPU column counts the same weights and KV; only the device's buffers differ.
    assert rows[1].cpu.weights_bytes == rows[1].gpu.weights_bytes
    assert rows[1].cpu.kv_cache_bytes == rows[1].gpu.kv_cache_bytes == 512 * 1024**2  # 4096 x 128 KiB


def test_it_lists_quants_of_equal_size_by_name_and_without_a_device_gives_no_verdict():
    model = make_model()
    make_quantization(model, name="Q4_K_M", format="gguf", bits_per_weight=4.89)
    make_quantization(model, name="Q4_K_L", format="gguf", bits_per_weight=4.89)
    rows = services.quant_rows(model=model, hardware=None, options=_options())
    assert [row.quant.name for row in rows] == ["Q4_K_L", "Q4_K_M"]
    assert all(row.result is None and row.max_ctx is None for row in rows)
    assert services.recommend_rows(rows=rows, device_kind="gpu") is None


def test_it_sums_the_memory_of_every_gpu_in_the_quant_table():
    model = make_model()
    make_quantization(model, name="F16", bits_per_weight=16.0)
    gpu = make_hardware(memory_bytes=12 * GIB)
    (one,) = services.quant_rows(model=model, hardware=gpu, options=_options())
    (two,) = services.quant_rows(model=model, hardware=gpu, options=_options(), gpu_count=2)
    # 16.1 GB of F16 weights: partial on one 12 GiB GPU, entirely on two (24 GiB less two overheads).
    assert one.result.verdict == fit.Verdict.PARTIAL_OFFLOAD and two.result.verdict == fit.Verdict.FITS_GPU
    assert two.result.usable_bytes == 2 * one.result.usable_bytes
    assert one.max_ctx is None and two.max_ctx is not None


def test_it_names_the_recommended_fastest_and_best_quality_rows():
    model = make_model()
    for name, bits, delta in (("F16", 16.0, 0.0), ("Q8_0", 8.5, 0.004), ("Q4_K_M", 4.89, 0.18), ("Q2_K", 3.0, 3.52)):
        make_quantization(model, name=name, bits_per_weight=bits, perplexity_delta=delta)
    gpu = make_hardware(memory_bytes=12 * GIB, bandwidth_gbps=1008.0)
    rows = services.quant_rows(model=model, hardware=gpu, options=_options())
    answer = services.recommend_rows(rows=rows, device_kind=HardwareKind.GPU)
    # F16 (16 GB) only runs partly offloaded; Q8_0 (8.5 GB) is the best quality entirely in 12 GiB and decodes at
    # about 1008 GB/s / 8.5 GB ~ 100 tok/s at most, far above 10; Q2_K reads the fewest bytes, so it is the fastest.
    assert answer.recommended.quant.name == "Q8_0"
    assert answer.fastest.quant.name == "Q2_K"
    assert answer.best_quality.quant.name == "F16"
    assert answer.rule.startswith("the highest-quality quantization that fits entirely in memory and decodes at least")
    assert answer.recommended is next(row for row in rows if row.quant.name == "Q8_0")  # the table's own row


# --- lists of models on a device --------------------------------------------------------------------------------------


def _ladder(model, *names_bits):
    for name, bits in names_bits:
        make_quantization(model, name=name, bits_per_weight=bits)
    return model


def test_it_ranks_full_gpu_fits_first_then_larger_models_then_names():
    gpu = make_hardware(memory_bytes=8 * GIB, bandwidth_gbps=272.0)
    small_b = _ladder(make_model(name="B small", n_params=1_000_000_000, n_layers=16), ("Q8_0", 8.5))
    small_a = _ladder(make_model(name="A small", n_params=1_000_000_000, n_layers=16), ("Q8_0", 8.5))
    mid = _ladder(make_model(name="Z mid", n_params=3_000_000_000, n_layers=28), ("Q8_0", 8.5))
    big = _ladder(make_model(name="Big"), ("F16", 16.0))  # 16 GB: only partly on 8 GiB
    models = [big, small_b, mid, small_a]
    found = services.best_fits(hardware=gpu, options=_options(), models=models)
    # Fits in GPU memory first (rank 0), larger first (3e9 before 1e9), equal sizes by name; partial offload last.
    assert [b.model.name for b in found] == ["Z mid", "A small", "B small", "Big"]
    assert [b.result.verdict for b in found] == [fit.Verdict.FITS_GPU] * 3 + [fit.Verdict.PARTIAL_OFFLOAD]
    # Without offload the partly offloaded model is left out. Three GPUs (24 GiB, less three ~0.4 GiB overheads) hold
    # its 16.1 GB (14.96 GiB) of weights, 0.5 GiB of KV and a compute buffer per GPU entirely; two (16 GiB) do not.
    entire = services.best_fits(hardware=gpu, options=_options(), models=models, allow_offload=False)
    assert [b.model.name for b in entire] == ["Z mid", "A small", "B small"]
    three = services.best_fits(hardware=gpu, options=_options(), models=[big], gpu_count=3)
    assert three[0].result.verdict == fit.Verdict.FITS_GPU and three[0].result.usable_bytes > 16 * GIB


def test_it_ranks_cpu_runs_after_offloads_and_reads_the_catalog_when_no_models_are_given():
    small = _ladder(make_model(name="Small", n_params=1_000_000_000, n_layers=16), ("Q8_0", 8.5))
    cpu = make_hardware(kind=HardwareKind.CPU, memory_bytes=32 * GIB, bandwidth_gbps=83.2, fp16_tflops=None)
    (best,) = services.best_fits(hardware=cpu, options=_options())  # every model in the catalog: just this one
    assert best.model == small and best.result.verdict == fit.Verdict.CPU_ONLY
    ranks = services.VERDICT_RANK
    assert ranks[fit.Verdict.FITS_GPU] < ranks[fit.Verdict.PARTIAL_OFFLOAD] < ranks[fit.Verdict.CPU_ONLY]
    assert ranks[fit.Verdict.CPU_ONLY] < ranks[fit.Verdict.DOES_NOT_FIT]


def test_it_picks_the_recommended_quant_and_says_the_context_was_clamped():
    model = _ladder(make_model(context_length=8192), ("F16", 16.0), ("Q8_0", 8.5), ("Q4_K_M", 4.89))
    device = services.device_spec_of(make_hardware(memory_bytes=12 * GIB))
    best = services.best_quant(model=model, device=device, options=_options(ctx=32_768))
    assert best.quant.name == "Q8_0" and best.recommended
    assert (best.ctx, best.ctx_clamped) == (8192, True)
    row = best.as_dict()
    assert row == {
        "model": model.slug,
        "name": model.name,
        "quant": "Q8_0",
        "recommended": True,
        "ctx": 8192,
        "ctx_clamped": True,
        "verdict": "fits-gpu",
        "total_bytes": best.result.memory.total_bytes,
        "needed_bytes": best.result.needed_bytes,
        "usable_bytes": best.result.usable_bytes,
        "headroom_bytes": best.result.headroom_bytes,
        "gpu_layers": 32,
        "est_decode_tps": best.result.est_decode_tps,
    }
    # The figures are the result's own, and they add up: headroom = usable - needed.
    assert row["headroom_bytes"] == row["usable_bytes"] - row["needed_bytes"] > 0


def test_it_falls_back_to_the_fastest_quant_when_none_keeps_the_speed_and_none_without_offload():
    # 8.03e9 parameters at F16 (16.1 GB) on a 4 GiB GPU with 272 GB/s and 64 GiB of RAM: only partial offload, the
    # system RAM's 60 GB/s reading most of 16 GB per token: ~4 tok/s, under the 10 tok/s rule: nothing recommended.
    model = _ladder(make_model(), ("F16", 16.0))
    device = services.device_spec_of(make_hardware(memory_bytes=4 * GIB, bandwidth_gbps=272.0))
    options = fit.FitOptions(ctx=4096, system_ram_bytes=64 * GIB)
    best = services.best_quant(model=model, device=device, options=options)
    assert best.quant.name == "F16" and not best.recommended and not best.ctx_clamped
    assert best.result.verdict == fit.Verdict.PARTIAL_OFFLOAD and best.result.est_decode_tps < 10
    assert services.best_quant(model=model, device=device, options=options, allow_offload=False) is None


def test_it_lists_the_devices_that_hold_a_model_smallest_first_and_skips_cpus():
    model = _ladder(make_model(), ("Q8_0", 8.5), ("Q4_K_M", 4.89))
    small = make_hardware(name="8 GiB", memory_bytes=8 * GIB)
    big = make_hardware(name="24 GiB", memory_bytes=24 * GIB)
    mid = make_hardware(name="12 GiB", memory_bytes=12 * GIB)
    tiny = make_hardware(name="2 GiB", memory_bytes=2 * GIB)
    cpu = make_hardware(name="CPU", kind=HardwareKind.CPU, memory_bytes=64 * GIB, fp16_tflops=None)
    found = services.hardware_that_runs(model=model, candidates=[big, cpu, small, tiny, mid], options=_options())
    # Q4_K_M (~4.9 GB) fits in 8 GiB, Q8_0 (~8.5 GB) in 12 and 24 GiB; 2 GiB holds neither; a CPU is no GPU.
    assert [(hw.name, best.quant.name) for hw, best in found] == [
        ("8 GiB", "Q4_K_M"),
        ("12 GiB", "Q8_0"),
        ("24 GiB", "Q8_0"),
    ]
    assert all(best.result.verdict == fit.Verdict.FITS_GPU for _, best in found)
    assert len(services.hardware_that_runs(model=model, candidates=[big, small, mid], options=_options(), limit=2)) == 2
    many = [make_hardware(memory_bytes=(16 + i) * GIB) for i in range(10)]
    assert len(services.hardware_that_runs(model=model, candidates=many, options=_options())) == 8  # the default


def test_it_orders_devices_of_equal_memory_by_the_larger_quant_first():
    model = _ladder(make_model(), ("Q8_0", 8.5), ("Q4_K_M", 4.89))
    # Two 24 GiB devices. At 30 GB/s neither quant keeps 10 tok/s (30 / 4.9 GB ~ 6 tok/s at best), so the pick is
    # the fastest, Q4_K_M; at 1,008 GB/s Q8_0 (8.5 GB: ~110 tok/s at most) is the recommended one. Equal memory:
    # the device that runs the larger quant first.
    slow = make_hardware(name="slow", memory_bytes=24 * GIB, bandwidth_gbps=30.0)
    fast = make_hardware(name="fast", memory_bytes=24 * GIB, bandwidth_gbps=1008.0)
    found = services.hardware_that_runs(model=model, candidates=[slow, fast], options=_options())
    assert [(hw.name, best.quant.name) for hw, best in found] == [("fast", "Q8_0"), ("slow", "Q4_K_M")]


# --- the speed model and the evidence beside a speed ------------------------------------------------------------------


def test_it_uses_the_engines_starting_points_without_a_provider_and_caches_a_providers_model(monkeypatch):
    monkeypatch.setattr(extensions, "_speed_model", None)
    assert services.speed_model() is DEFAULT_SPEED
    calls = []
    fitted = SpeedModel(classes=(("cuda", DEFAULT_SPEED.params_for("cuda")),))

    def provider():
        calls.append(1)
        return fitted

    monkeypatch.setattr(extensions, "_speed_model", provider)
    assert services.speed_model() == fitted
    assert services.speed_model() == fitted
    assert calls == [1]  # fitted once per data version, then read from the cache


def test_it_shows_the_measured_speeds_of_this_model_on_this_device_only(monkeypatch):
    model, other_model = make_model(), make_model()
    gpu, other_gpu = make_hardware(), make_hardware()
    mine = extensions.MeasuredSpeed(decode_tps=101.5, decode_runs=3, prefill_tps=4000.0, prefill_runs=2)
    table = {
        (model.pk, "Q4_K_M", gpu.pk): mine,
        (model.pk, "Q8_0", other_gpu.pk): extensions.MeasuredSpeed(1.0, 1, None, 0),  # same model, other device
        (other_model.pk, "Q6_K", gpu.pk): extensions.MeasuredSpeed(2.0, 1, None, 0),  # same device, other model
    }
    monkeypatch.setattr(extensions, "_measured", lambda: table)
    evidence = services.speed_evidence(model=model, hardware=gpu)
    assert evidence.measured == {"Q4_K_M": mine}
    assert (evidence.backend, evidence.backend_label) == ("cuda", "CUDA")
    # Measured runs are of one GPU: with two, none is shown.
    assert services.speed_evidence(model=model, hardware=gpu, gpu_count=2).measured == {}
    assert services.speed_evidence(model=None, hardware=gpu).measured == {}


def test_it_reports_the_band_and_run_count_of_the_devices_backend(monkeypatch):
    cuda = DEFAULT_SPEED.params_for("cuda")
    import dataclasses

    calibrated = dataclasses.replace(cuda, decode_runs=42, decode_error_pct=12.5, prefill_error_pct=30.0)
    model = SpeedModel(classes=(("cuda", calibrated),))
    monkeypatch.setattr(extensions, "_speed_model", lambda: model)
    evidence = services.speed_evidence(model=None, hardware=make_hardware(vendor="NVIDIA"))
    assert (evidence.band_pct, evidence.runs, evidence.prefill_band_pct) == (12.5, 42, 30.0)
    assert evidence.band_percentile == 90 or evidence.band_percentile > 0
    assert evidence.accuracy_url == "/benchmarks/accuracy/" or evidence.accuracy_url.endswith("accuracy/")


@pytest.mark.parametrize(
    ("backend", "label"),
    [("cuda", "CUDA"), ("rocm", "ROCm"), ("metal", "Metal"), ("vulkan", "Vulkan"), ("sycl", "SYCL"), ("cpu", "CPU")],
)
def test_it_names_each_backend_as_its_project_spells_it(backend, label):
    evidence = services.SpeedEvidence(backend, None, 0, {}, None)
    assert evidence.backend_label == label
    assert services.SpeedEvidence("opencl", None, 0, {}, None).backend_label == "opencl"  # unknown: as given


# --- the fit table shared by list pages -------------------------------------------------------------------------------


def test_it_builds_a_fit_table_once_per_device_and_options_and_reads_it_back_in_order(monkeypatch):
    gpu = make_hardware(memory_bytes=8 * GIB, bandwidth_gbps=272.0)
    small = _ladder(make_model(name="Small", n_params=1_000_000_000, n_layers=16), ("Q8_0", 8.5))
    big = _ladder(make_model(name="Big"), ("F16", 16.0))  # 16 GB: partial offload on 8 GiB
    table = services.fit_table(hardware=gpu, options=_options(ctx=8192))
    # Rows are (model id, verdict, the pickled entry): lists filter and count on the first two.
    assert [(row[0], row[1]) for row in table] == [(small.pk, "fits-gpu"), (big.pk, "partial")]
    entries = services.fit_entries(table)
    assert [(e.model_id, e.name, e.n_params) for e in entries] == [
        (small.pk, "Small", 1_000_000_000),
        (big.pk, "Big", 8_030_261_248),
    ]
    first = entries[0]
    assert (first.quant_id, first.ctx, first.ctx_clamped, first.recommended) == (
        small.quantizations.get().pk,
        8192,
        False,
        True,
    )
    assert first.result.verdict == fit.Verdict.FITS_GPU
    calls = []
    real = services.catalog_picks  # one call per table built: every model's pick
    monkeypatch.setattr(services, "catalog_picks", lambda **kw: calls.append(kw) or real(**kw))
    services.fit_table(hardware=gpu, options=_options(ctx=8192))
    assert calls == []  # the same device and options: read from the cache
    entire = services.fit_entries(services.fit_table(hardware=gpu, options=_options(ctx=8192), allow_offload=False))
    assert [e.name for e in entire] == ["Small"] and calls[-1]["allow_offload"] is False
    two = services.fit_entries(services.fit_table(hardware=gpu, options=_options(ctx=8192), gpu_count=3))
    assert calls[-1]["device"].count == 3 and [e.result.verdict for e in two] == [fit.Verdict.FITS_GPU] * 2
    services.fit_table(hardware=gpu, options=_options(ctx=4096))
    assert len(calls) == 3  # another context: another table

    rows = services.best_fits_of(table)
    assert [(r.model, r.quant.name, r.ctx, r.recommended) for r in rows] == [
        (small, "Q8_0", 8192, True),
        (big, "F16", 8192, False),
    ]
    assert rows[1].result == entries[1].result and rows[0].ctx_clamped is False
    big.delete()  # a model removed since the table was built drops out
    assert [r.model for r in services.best_fits_of(table)] == [small]


def test_it_picks_quants_with_the_speed_model_in_force(monkeypatch):
    import dataclasses

    # A fitted model in which every CUDA decode step costs at least one second of fixed overhead: at most 1 tok/s,
    # so no quant keeps the 10 tok/s rule and the pick is the fastest, not a recommended one.
    slow = dataclasses.replace(DEFAULT_SPEED.params_for("cuda"), overhead_s=1.0)
    monkeypatch.setattr(extensions, "_speed_model", lambda: SpeedModel(classes=(("cuda", slow),)))
    model = _ladder(make_model(), ("Q8_0", 8.5), ("Q4_K_M", 4.89))
    best = services.best_quant(model=model, device=services.device_spec_of(make_hardware()), options=_options())
    assert best.result.est_decode_tps <= 1.0 and not best.recommended
    assert best.quant.name == "Q4_K_M"  # the fastest: fewer bytes a token
