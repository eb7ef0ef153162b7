"""Speed figures against hand calculations (issue 14: mutants of catalog/speed.py that no test killed). The expected
numbers are worked in the comments from the formulas docs/fit.md states (bytes over bandwidth, FLOPs over a rate),
never by calling the function under test for the answer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from catalog import fit, speed

# A plain 1B-parameter shape whose bytes are easy to count: hidden 1000, vocabulary 1000 (1,000,000 embedding
# parameters), 10 layers of 8 KV heads x 125 (1,000 KV values per token per layer for K, as many for V).
SHAPE = fit.ModelShape(
    n_params=1_000_000_000, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125, vocab_size=1000
)
# No figure and no known mix: every weight at 16 bits. Layers (1e9 - 2 x 1e6) x 2 bytes = 1,996,000,000; the
# output matrix 1e6 x 2 = 2,000,000; the embeddings (looked up, not read) 2,000,000.
RAW16 = fit.QuantSpec(name="NOT_A_QUANT")
MOE = fit.ModelShape(
    n_params=1_000_000_000, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125, vocab_size=1000,
    n_active_params=400_000_000, n_experts=8, n_experts_used=2,
)  # fmt: skip


def test_the_decode_roofline_is_bandwidth_over_the_bytes_of_one_token():
    # Weights read per token: layers + output = 1,998,000,000. KV at 100 tokens, f16: 10 layers x 2 x 1,000 x 2 bytes
    # x 100 = 4,000,000. 1,000 GB/s / 2,002,000,000 bytes = 499.5005 t/s.
    assert speed.roofline_decode_tps(SHAPE, RAW16, 1000.0, ctx=100) == pytest.approx(1e12 / 2_002_000_000)
    # q8_0 KV: 34 bytes per 32 values: 10 x 2 x 1,000 x 34 / 32 x 100 = 2,125,000.
    assert speed.roofline_decode_tps(SHAPE, RAW16, 1000.0, ctx=100, kv_type="q8_0") == pytest.approx(
        1e12 / 2_000_125_000
    )
    # Tied embeddings: the output is the embedding matrix, read once: layers (1e9 - 1e6) x 2 + 2e6 = 2,000,000,000.
    tied = fit.ModelShape(**{**_fields(SHAPE), "tied_embeddings": True})
    assert speed.roofline_decode_tps(tied, RAW16, 1000.0, ctx=1) == pytest.approx(1e12 / (2_000_000_000 + 40_000))
    for bad in ({"bandwidth_gbps": 0.0}, {"ctx": 0}, {"kv_type": "q5_1"}):
        with pytest.raises(ValueError):
            speed.roofline_decode_tps(**{"shape": SHAPE, "quant": RAW16, "bandwidth_gbps": 1000.0, **bad})


def test_sliding_window_layers_read_at_most_their_window():
    # 5 of 10 layers with a 64-token window at ctx 1000: KV = (5 x 1000 + 5 x 64) x 2 x 1,000 x 2 = 21,280,000.
    swa = fit.ModelShape(**{**_fields(SHAPE), "sliding_window": 64, "swa_layers": frozenset({0, 2, 4, 6, 8})})
    assert speed.roofline_decode_tps(swa, RAW16, 1000.0, ctx=1000) == pytest.approx(1e12 / (1_998_000_000 + 21_280_000))
    # MLA (DeepSeek): kv_lora_rank 512 + rope 64 = 576 values per token per layer, f16: 10 x 576 x 2 x 100 = 1,152,000.
    mla = fit.ModelShape(**{**_fields(SHAPE), "kv_lora_rank": 512, "qk_rope_head_dim": 64})
    assert speed.roofline_decode_tps(mla, RAW16, 1000.0, ctx=100) == pytest.approx(1e12 / (1_998_000_000 + 1_152_000))


def test_a_moe_reads_its_dense_part_and_output_whole_and_a_batch_reads_the_experts_it_selects():
    # Experts = layers x (1 - a) / (1 - k/E) = 1,996,000,000 x 0.6 / 0.75 = 1,596,800,000; the layers' dense part
    # 399,200,000; the output matrix 2,000,000 is read whole. One token selects 2 of 8 experts: 2,000,000 + 399,200,000
    # + 1,596,800,000 x 0.25 = 800,400,000 bytes, + 4,000,000 of KV at 100 tokens. A batch of 2 touches
    # 1 - (1 - 2/8)^2 = 0.4375 of the experts: 401,200,000 + 698,600,000 = 1,099,800,000.
    assert speed.roofline_decode_tps(MOE, RAW16, 1000.0, ctx=100) == pytest.approx(1e12 / 804_400_000)
    assert speed._weights_read(MOE, RAW16, 1) == pytest.approx(800_400_000)
    assert speed._weights_read(MOE, RAW16, 2) == pytest.approx(1_099_800_000)
    assert speed._weights_read(SHAPE, RAW16, 4) == pytest.approx(1_998_000_000)  # dense: the same bytes for any batch


def test_mxfp4_experts_are_the_expert_parameters_at_four_and_a_quarter_bits():
    # MXFP4 holds only the routed experts. Layer parameters 1e9 - 2 x 1e6 (embeddings and output) = 998,000,000, of
    # which 998,000,000 x 0.6 / 0.75 = 798,400,000 are experts: x 4.25 / 8 = 424,150,000 bytes, whatever the file's
    # average density; the rest of the layers' bytes is the dense part every token reads.
    for name in ("MXFP4", "MXFP4_MOE"):
        quant = fit.QuantSpec(name=name)
        assert speed._moe_experts_bytes(MOE, quant) == pytest.approx(424_150_000)
        layers = fit.weights_split(MOE, quant)
        dense = layers.layers_bytes - 424_150_000
        assert speed._weights_read(MOE, quant, 1) == pytest.approx(layers.output_bytes + dense + 424_150_000 / 4)
    assert speed._moe_experts_bytes(SHAPE, fit.QuantSpec(name="MXFP4")) == 0.0  # dense model: no experts
    # --n-cpu-moe 5 of 10 layers, batch 1: expert bytes of the 16-bit layers (1,996,000,000 x 0.6 / 0.75 =
    # 1,596,800,000) x 0.25 selected x 5/10 = 199,600,000 read from host RAM.
    assert speed._host_expert_read(MOE, RAW16, 1, 5) == pytest.approx(199_600_000)
    assert speed._host_expert_read(MOE, RAW16, 1, 0) == 0.0


def test_only_the_moe_layers_below_n_cpu_moe_put_experts_in_host_ram():
    # Llama 4 Maverick interleaves MoE and dense layers (odd layers hold experts) and DeepSeek starts with
    # first_k_dense_replace dense layers: llama.cpp's --n-cpu-moe N moves the expert tensors of layers 0..N-1, and a
    # dense layer has none. The experts, 1,596,800,000 bytes (above), sit in the MoE layers only.
    maverick = replace(MOE, moe_layers=frozenset({1, 3, 5, 7, 9}))  # 319,360,000 bytes per MoE layer
    deepseek = replace(MOE, moe_layers=frozenset(range(3, 10)))  # first 3 dense: 1,596,800,000 / 7 per MoE layer
    # --n-cpu-moe 5 reaches layers 0-4: Maverick's MoE layers 1 and 3 (2 x 319,360,000 = 638,720,000 bytes), DeepSeek's
    # 3 and 4 (2 / 7 x 1,596,800,000 = 456,228,571.4). One token reads 2 of 8 experts there: 159,680,000 and
    # 114,057,142.9 bytes, where counting every layer as a MoE layer read 1,596,800,000 x 5/10 x 0.25 = 199,600,000.
    assert speed._host_expert_read(maverick, RAW16, 1, 5) == pytest.approx(159_680_000)
    assert speed._host_expert_read(deepseek, RAW16, 1, 5) == pytest.approx(1_596_800_000 * 2 / 7 * 0.25)
    assert speed._host_expert_read(deepseek, RAW16, 1, 3) == 0.0  # layers 0-2: all dense, nothing moved
    # MXFP4 experts take 424,150,000 bytes (above); Maverick's 2 of 5 MoE layers: 169,660,000, a quarter read per token.
    assert speed._host_expert_read(maverick, fit.QuantSpec(name="MXFP4"), 1, 5) == pytest.approx(169_660_000 / 4)
    # Through the decode step on a GPU, 1,000 GB/s, host RAM 100 GB/s: of the 800,400,000 bytes a token reads
    # (above), 159,680,000 come from host RAM (1.5968 ms) and 640,720,000 from the GPU (0.64072 ms).
    gpu = fit.DeviceSpec(name="x", kind="gpu", memory_bytes=1, bandwidth_gbps=1000.0, system_bandwidth_gbps=100.0)
    place = fit._Placement(fit.Verdict.PARTIAL_OFFLOAD, 10, 1, -1, 2, cpu_moe_layers=5)
    terms = speed.decode_terms(maverick, RAW16, gpu, fit.FitOptions(ctx=1), place, depth=1)
    assert terms.host_s == pytest.approx(159_680_000 / 100e9)
    assert terms.device_quant_s == pytest.approx(640_720_000 / 1000e9)
    # A 512-token prompt streams the host experts to the GPU once (one ubatch) at 25 GB/s: 638,720,000 / 25e9 s.
    prefill = speed.prefill_terms(maverick, RAW16, replace(gpu, matrix_tflops=100.0), n_prompt=512, place=place)
    assert prefill.upload_s == pytest.approx(638_720_000 / 25e9)


def test_the_prefill_roofline_is_the_peak_rate_over_two_flops_per_parameter():
    # 2 x 1e9 FLOPs per token; the larger stated rate (100 TOPS INT8 over 50 TFLOPS matrix): 1e14 / 2e9 = 50,000 t/s.
    device = fit.DeviceSpec(
        name="x", kind="gpu", memory_bytes=1, bandwidth_gbps=1.0, int8_tops=100.0, matrix_tflops=50.0, fp16_tflops=20.0
    )
    assert speed.roofline_prefill_tps(SHAPE, RAW16, device) == pytest.approx(50_000)
    assert speed.roofline_prefill_tps(SHAPE, RAW16, device, n_prompt=7) == pytest.approx(50_000)
    assert speed.roofline_prefill_tps(MOE, RAW16, device) == pytest.approx(1e14 / 8e8)  # active share 0.4
    fp16_only = fit.DeviceSpec(name="x", kind="gpu", memory_bytes=1, bandwidth_gbps=1.0, fp16_tflops=20.0)
    assert speed.roofline_prefill_tps(SHAPE, RAW16, fp16_only) == pytest.approx(10_000)
    assert speed.roofline_prefill_tps(SHAPE, RAW16, fit.DeviceSpec("x", "gpu", 1, 1.0)) is None


def test_prefill_flops_count_the_attention_over_the_depth():
    # FLOPs = 2 x params x N + 4 x layers x heads x head_dim x N x (depth + N / 2)
    #       = 2e9 x 512 + 4 x 10 x 8 x 125 x 512 x (1000 + 256) = 1.024e12 + 25,722,880,000.
    device = fit.DeviceSpec(name="x", kind="gpu", memory_bytes=1, bandwidth_gbps=1.0, matrix_tflops=10.0)
    terms = speed.prefill_terms(SHAPE, RAW16, device, n_prompt=512, depth=1000)
    assert terms.device_flops_s == pytest.approx((1.024e12 + 25_722_880_000) / 1e13)
    assert (terms.tokens, terms.quantized, terms.upload_s, terms.extra_gpus) == (512, True, 0.0, 0)
    f16 = speed.prefill_terms(SHAPE, fit.QuantSpec("F16"), device, n_prompt=512, depth=0)
    assert f16.quantized is False
    assert f16.device_flops_s == pytest.approx((1.024e12 + 4 * 10 * 8 * 125 * 512 * 256) / 1e13)
    two = fit.DeviceSpec(name="x", kind="gpu", memory_bytes=1, bandwidth_gbps=1.0, matrix_tflops=10.0, count=2)
    assert speed.prefill_terms(SHAPE, RAW16, two).extra_gpus == 1
    with pytest.raises(ValueError):
        speed.prefill_terms(SHAPE, RAW16, device, n_prompt=0)


def test_prefill_seconds_add_the_per_token_cost_the_flops_and_the_upload():
    terms = speed.PrefillTerms(tokens=100, device_flops_s=0.5, quantized=True, upload_s=0.25, extra_gpus=2)
    params = speed.PRIOR_GPU
    # 100 x (2e-6 + 2e-6 x 2) + 0.5 / 0.35 + 0.25
    assert speed.prefill_seconds(terms, params) == pytest.approx(100 * 6e-6 + 0.5 / 0.35 + 0.25)
    assert speed.prefill_features(terms) == (100.0, 0.0, 0.5, 200.0, 0.0)
    floats = speed.PrefillTerms(tokens=10, device_flops_s=0.5, quantized=False, upload_s=0.0)
    assert speed.prefill_features(floats) == (10.0, 0.5, 0.0, 0.0, 0.0)


def test_a_decode_step_adds_every_term_at_its_factor():
    terms = speed.DecodeTerms(
        layer_units=10.0, extra_gpus=1, device_quant_s=0.01, device_float_s=0.002, device_kv_s=0.003,
        quant_alu_s=0.0005, float_alu_s=0.0001, host_s=0.0, flops=1e9,
    )  # fmt: skip
    gpu, cpu = speed.PRIOR_GPU, speed.PRIOR_CPU
    # 0.0003 + 20e-6 x 10 + 0.01 / 0.6 + 0.002 / 0.7 + 0.003 / 0.5 + 0.0003 x 1 + 2 x 0.0005 + 1 x 0.0001
    expected = 0.0003 + 0.0002 + 0.01 / 0.6 + 0.002 / 0.7 + 0.006 + 0.0003 + 0.001 + 0.0001
    assert speed.decode_seconds(terms, gpu, cpu, flops_per_s=None, flop_factor=1.0) == pytest.approx(expected)
    # Compute bound: 1e9 FLOPs x 2 / 1e10 FLOP/s = 0.2 s beats the memory time.
    assert speed.decode_seconds(terms, gpu, cpu, flops_per_s=1e10, flop_factor=2.0) == pytest.approx(0.2)
    # Host reads at the CPU class's quant read factor (1 / 0.6); with a host share the compute floor does not apply.
    host = speed.DecodeTerms(**{**_fields(terms), "host_s": 0.06})
    assert speed.decode_seconds(host, gpu, cpu, flops_per_s=1e10, flop_factor=2.0) == pytest.approx(expected + 0.1)
    assert speed.decode_features(terms) == (1.0, 10.0, 0.01, 0.002, 0.003, 1.0, 0.0005, 0.0001)


@pytest.mark.parametrize(
    ("kind", "vendor", "name", "backend"),
    [
        ("cpu", "AMD", "Ryzen 9 7950X", "cpu"),
        ("unified", "Apple", "M2 Max", "metal"),
        ("unified", "", "Apple M3", "metal"),
        ("unified", "AMD", "Ryzen AI Max+ 395", "rocm"),
        ("gpu", "NVIDIA", "H200", "cuda"),
        ("gpu", "AMD", "Radeon RX 7900 XTX", "rocm"),
        ("gpu", "ATI", "Radeon HD", "rocm"),
        ("gpu", "Intel", "Arc A770", "sycl"),
        ("gpu", "", "GeForce RTX 4090", "cuda"),
        ("gpu", "", "Tesla V100", "cuda"),
        ("gpu", "", "Quadro RTX 6000", "cuda"),
        ("gpu", "", "Radeon Pro W7900", "rocm"),
        ("gpu", "", "Instinct MI300X", "rocm"),
        ("gpu", "", "Moore Threads MTT S80", "vulkan"),
    ],
)
def test_it_picks_llama_cpps_default_backend_per_device(kind, vendor, name, backend):
    device = fit.DeviceSpec(name=name, kind=kind, memory_bytes=1, bandwidth_gbps=1.0, vendor=vendor)
    assert speed.backend_of(device) == backend


def test_the_speed_model_looks_up_its_classes():
    measured = speed.ClassParams(**{**_fields(speed.PRIOR_GPU), "decode_runs": 3})
    model = speed.SpeedModel(classes=(("cpu", speed.PRIOR_CPU), ("cuda", measured)))
    assert model.params_for("cuda") is measured
    assert model.params_for("cpu") is speed.PRIOR_CPU
    assert model.params_for("rocm") is speed.PRIOR_GPU  # no class: the GPU prior
    assert speed.SpeedModel(classes=()).params_for("cpu") is speed.PRIOR_CPU
    assert model.is_measured("cuda") and not model.is_measured("cpu") and not model.is_measured("metal")


def _fields(obj) -> dict:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def test_decode_speed_at_a_depth_on_a_cpu_by_hand():
    # CPU prior (PRIOR_CPU): 0.0005 s + 5e-6 s x 10 layers + weights 1,998,000,000 B / (0.6 x 100 GB/s)
    # + KV at depth 100 (4,000,000 B) / (0.5 x 100 GB/s) = 0.0005 + 0.00005 + 0.0333 + 0.00008 = 0.03393 s per token.
    cpu = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=64 * 1024**3, bandwidth_gbps=100.0)
    options = fit.FitOptions(ctx=4096)
    result = fit.fit(SHAPE, RAW16, cpu, options)
    assert result.verdict == fit.Verdict.CPU_ONLY
    tps = speed.decode_tps_at(SHAPE, RAW16, cpu, options, result, speed.SpeedModel(), depth=100)
    assert tps == pytest.approx(1 / 0.03393)


def test_a_cpu_decode_pays_no_alu_time_on_top_of_its_memory_stream():
    # The CPU prior charges no dequantize-and-multiply time per byte (PRIOR_CPU's ALU factors are 0): a CPU's cores
    # run the dot products while the next rows stream in, and decode stops getting faster with more cores once the
    # memory is saturated (llama.cpp issue 34: a 13900K's tg128 at 8 / 16 / 32 threads, 18.27 / 15.66 / 15.88 t/s).
    # So a CPU with a slow 0.1 TFLOPS FP32 rate decodes as the one above, 0.03393 s per token, where the GPU prior's
    # ALU factor 2 would add 2 x 1,998,000,000 B / 1e11 FLOP/s = 0.03996 s.
    cpu = fit.DeviceSpec(name="cpu", kind="cpu", memory_bytes=64 * 1024**3, bandwidth_gbps=100.0, fp32_tflops=0.1)
    options = fit.FitOptions(ctx=4096)
    result = fit.fit(SHAPE, RAW16, cpu, options)
    tps = speed.decode_tps_at(SHAPE, RAW16, cpu, options, result, speed.SpeedModel(), depth=100)
    assert tps == pytest.approx(1 / 0.03393)


def test_time_to_first_token_is_the_prompt_over_the_prefill_rate():
    # 100 tokens on 10 TFLOPS, GPU prior: FLOPs 2e9 x 100 + 4 x 10 x 8 x 125 x 100 x 50 = 2.002e11 -> 0.02002 s at
    # factor 1; 100 x 2e-6 + 0.02002 / 0.35 = 0.0574 s, plus the one ubatch's weights, 1,998,000,000 bytes at 1 GB/s.
    device = fit.DeviceSpec(name="x", kind="gpu", memory_bytes=1, bandwidth_gbps=1.0, matrix_tflops=10.0)
    ttft = speed.time_to_first_token_s(SHAPE, RAW16, device, speed.SpeedModel(), n_prompt=100)
    assert ttft == pytest.approx(0.0002 + 0.02002 / 0.35 + 1.998)
    assert (
        speed.time_to_first_token_s(SHAPE, RAW16, fit.DeviceSpec("x", "gpu", 1, 1.0), speed.SpeedModel(), 100) is None
    )


F16 = fit.QuantSpec(name="F16")
FAST = fit.DeviceSpec(
    name="gpu", kind="gpu", memory_bytes=8 * 1024**3, bandwidth_gbps=1000.0, fp32_tflops=10.0, clock_mhz=1000.0, count=2
)


def test_a_float_model_on_the_gpu_costs_float_reads_and_alu_work_by_hand():
    # F16 weights: 1,998,000,000 bytes read at 1,000 GB/s = 0.001998 s; KV at depth 100: 4,000,000 B = 4e-6 s;
    # ALU: (1,998,000,000 + 4,000,000) / 10 TFLOPS = 2.002e-4 s, none of it "quantized"; 10 layers at 1 GHz count
    # as 20 two-GHz layer units; 2 GPUs: 1 extra; 2 x 1e9 FLOPs.
    place = fit._Placement(fit.Verdict.FITS_GPU, 10, 0, 0)
    terms = speed.decode_terms(SHAPE, F16, FAST, fit.FitOptions(ctx=4096), place, depth=100)
    assert terms.layer_units == 20.0 and terms.extra_gpus == 1
    assert (terms.device_quant_s, terms.quant_alu_s, terms.host_s) == (0.0, 0.0, 0.0)
    assert terms.device_float_s == pytest.approx(0.001998)
    assert terms.device_kv_s == pytest.approx(4e-6)
    assert terms.float_alu_s == pytest.approx(2.002e-4)
    assert terms.flops == pytest.approx(2e9)


def test_a_model_left_in_host_ram_reads_at_the_systems_bandwidth():
    # Nothing on the GPU: weights + KV (2,002,000,000 B) from host RAM at the default 60 GB/s; no GPU term, and the
    # second GPU hands nothing over.
    place = fit._Placement(fit.Verdict.CPU_ONLY, 0, 0, 0)
    terms = speed.decode_terms(SHAPE, RAW16, FAST, fit.FitOptions(ctx=4096), place, depth=100)
    assert terms.extra_gpus == 0
    assert (terms.device_quant_s, terms.device_kv_s, terms.quant_alu_s) == (0.0, 0.0, 0.0)
    assert terms.host_s == pytest.approx(2_002_000_000 / 60e9)


def test_host_reads_use_the_cpu_class_of_the_speed_model():
    # 6 of 10 layers on the GPU: 40 % of 2,002,000,000 B from RAM at 60 GB/s = 0.0133467 s, read at the CPU class's
    # quant_read_factor: 3.0 in this model against the prior's 1 / 0.6.
    place = fit._Placement(fit.Verdict.PARTIAL_OFFLOAD, 6, 0, 0)
    slow_host = speed.ClassParams(**{**_fields(speed.PRIOR_CPU), "quant_read_factor": 3.0})
    options = fit.FitOptions(ctx=4096)
    prior = speed.step_seconds(SHAPE, RAW16, FAST, options, place, 1, speed.SpeedModel(), depth=100)
    fitted = speed.step_seconds(
        SHAPE, RAW16, FAST, options, place, 1, speed.SpeedModel(classes=(("cpu", slow_host),)), depth=100
    )
    assert fitted - prior == pytest.approx((3.0 - 1 / 0.6) * 0.4 * 2_002_000_000 / 60e9)


def test_a_partial_offload_uploads_the_host_layers_once_per_ubatch():
    # 4 of 10 layers in RAM: 1,996,000,000 / 10 x 4 = 798,400,000 B, sent over PCIe (25 GB/s) for each of the
    # ceil(1000 / 512) = 2 ubatches: 0.063872 s.
    place = fit._Placement(fit.Verdict.PARTIAL_OFFLOAD, 6, 0, 0)
    gpu = fit.DeviceSpec(name="gpu", kind="gpu", memory_bytes=1, bandwidth_gbps=1.0, matrix_tflops=10.0)
    terms = speed.prefill_terms(SHAPE, RAW16, gpu, n_prompt=1000, place=place)
    assert terms.upload_s == pytest.approx(0.063872)


def test_quantized_prompt_processing_also_pays_its_flops_at_the_fp32_rate():
    # pp512 at depth 0: 2 x 1e9 x 512 = 1.024e12 FLOPs for the weights + 4 x 10 layers x 8 heads x 125 x 512 x 256 =
    # 5,242,880,000 for attention = 1,029,242,880,000. On 100 int8 TOPS that is 0.0102924288 s; the same FLOPs over
    # a 20 TFLOPS FP32 rate 0.051462144 s (MMQ's activation quantization and block scales run on those units).
    device = fit.DeviceSpec(
        name="x", kind="gpu", memory_bytes=8 * 1024**3, bandwidth_gbps=500.0, int8_tops=100.0, fp32_tflops=20.0
    )
    q4 = fit.QuantSpec(name="Q4_K_M")
    terms = speed.prefill_terms(SHAPE, q4, device)
    assert terms.quantized is True
    assert terms.device_flops_s == pytest.approx(0.0102924288)
    assert terms.alu_s == pytest.approx(0.051462144)
    assert speed.prefill_features(terms) == pytest.approx((512.0, 0.0, 0.0102924288, 0.0, 0.051462144))
    # The one ubatch streams the Q4_K_M layers and output matrix once at 500 GB/s.
    split = fit.weights_split(SHAPE, q4)
    assert terms.weights_read_s == pytest.approx((split.layers_bytes + split.output_bytes) / 500e9)
    # With an ALU factor of 0.5: 512 x 2e-6 + 0.0102924288 / 0.35 + 0.051462144 x 0.5 = 0.0560..., plus that read.
    params = replace(speed.PRIOR_GPU, prefill_quant_alu_factor=0.5)
    expected = 512 * 2e-6 + 0.0102924288 / 0.35 + 0.051462144 * 0.5 + terms.weights_read_s
    assert speed.prefill_seconds(terms, params) == pytest.approx(expected)
    assert speed.prefill_tps(SHAPE, device, speed.SpeedModel(default_gpu=params), q4) == pytest.approx(512 / expected)
    # F16 weights run through cuBLAS on the matrix units (50 TFLOPS here): no ALU term.
    with_matrix = fit.DeviceSpec(**{**_fields(device), "matrix_tflops": 50.0})
    f16 = speed.prefill_terms(SHAPE, fit.QuantSpec(name="F16"), with_matrix)
    assert f16.quantized is False and f16.alu_s == 0.0
    # No FP32 rate stated: the term is 0, not a division by zero.
    no_alu = fit.DeviceSpec(**{**_fields(device), "fp32_tflops": None})
    assert speed.prefill_terms(SHAPE, q4, no_alu).alu_s == 0.0
