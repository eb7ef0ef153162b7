"""Where the weights sit with every layer on the GPU, against llama.cpp's own CUDA report (the H200 fixtures written by
bench/gpu_speed.py, tests/fixtures/llamacpp_cuda: llama.cpp 0c1e57098, -ngl 99).

llama.cpp keeps its input layer, the token embeddings, in host memory whatever -ngl says (llama_model::load_tensors,
src/llama-model.cpp: "there is very little benefit to offloading the input layer, so always keep it on the CPU"); a
model without output.weight loads the token embeddings a second time for its output layer, on the GPU
(TENSOR_DUPLICATED, llama_model_loader::create_tensor). The fixtures show both: CPU_Mapped model = token_embd, and
CUDA0 model = the file's tensors less token_embd (untied) or all of them (tied: Gemma 3 270M).
"""

from __future__ import annotations

import pytest

from catalog import fit
from tests.catalog.test_gpu_fixtures import FIXTURE_DATA, RUNS, options_of, run_id, shape_of

MIB = 1024**2
PRINT_ROUNDING_MIB = 0.005
# The engine splits an exact total by its quant-mix model, so its token-embedding share is an estimate: within 0.1% of
# the GGUF's token_embd on these files (Llama 3.1 8B Q4_K_M: 295,211,038 against 295,501,824 bytes).
EMBED_SHARE_TOLERANCE = 0.01
# ggml-cuda aligns each tensor to 128 bytes and pads a quantized tensor's rows to 512 values (at most 544 bytes a
# tensor here): the CUDA0 buffer sits that much above the tensor bytes (test_gpu_fixtures.py).
ALIGNMENT_BYTES_PER_TENSOR = 128 + 544


def _quant(data: dict) -> fit.QuantSpec:
    return fit.QuantSpec(data["quant"], tensor_bytes=data["gguf"]["tensor_bytes"])


@pytest.mark.parametrize("data", FIXTURE_DATA, ids=[d["name"] for d in FIXTURE_DATA])
def test_it_puts_the_weights_where_llama_cpp_reports_them(data):
    shape, quant = shape_of(data), _quant(data)
    mem = fit.memory_breakdown(shape, quant, options_of(data["runs"][0]), device_kind="gpu")
    buffers = data["model_buffers_mib"]
    embd = data["gguf"]["token_embd_bytes"]
    # Host: the token embeddings (tied or not).
    assert mem.host_weights_bytes == pytest.approx(buffers["CPU_Mapped model"] * MIB, rel=EMBED_SHARE_TOLERANCE)
    assert mem.host_weights_bytes == pytest.approx(embd, rel=EMBED_SHARE_TOLERANCE)
    # GPU: the reported CUDA0 buffer, to within the engine's embedding estimate and CUDA's per-tensor padding.
    alignment = sum(data["gguf"]["tensor_types"].values()) * ALIGNMENT_BYTES_PER_TENSOR
    slack = abs(mem.host_weights_bytes - embd) + alignment + PRINT_ROUNDING_MIB * MIB
    assert abs(mem.gpu_weights_bytes - buffers["CUDA0 model"] * MIB) <= slack
    if shape.tied_embeddings:
        # Gemma 3 270M: the whole file on the GPU (the output layer's copy of token_embd) and token_embd on the host.
        assert mem.output_copy_bytes == mem.host_weights_bytes
        assert mem.gpu_weights_bytes == mem.weights_bytes
    else:
        assert mem.output_copy_bytes == 0
        assert mem.gpu_weights_bytes == mem.weights_bytes - mem.host_weights_bytes


@pytest.mark.parametrize(("data", "run"), RUNS, ids=[run_id(item) for item in RUNS])
def test_the_gpu_need_is_llama_cpps_cuda_buffers(data, run):
    # needed = what the run allocates on the GPU besides the runtime: llama.cpp's CUDA0 model + KV + compute buffers.
    # KV is exact; the compute buffer is an estimate (+0.7% to +6.0% on dense models, -10.8% on the MoE, +106% for
    # contexts under the ubatch: docs/fit.md, "Measured on an H200"), so the weights are checked apart from it.
    shape, opts = shape_of(data), options_of(run)
    device = fit.DeviceSpec("H200", "gpu", 143_771 * MIB, 4800.0)
    result = fit.fit(shape, _quant(data), device, opts)
    assert result.verdict == fit.Verdict.FITS_GPU
    reported = data["model_buffers_mib"]["CUDA0 model"] + run["buffers_mib"]["CUDA0 KV"]
    engine = (result.needed_bytes - result.memory.compute_bytes) / MIB
    alignment = sum(data["gguf"]["tensor_types"].values()) * ALIGNMENT_BYTES_PER_TENSOR / MIB
    # Before the input layer moved to the host, the engine was a whole token_embd above (281.81 MiB for 8B Q4_K_M).
    assert abs(engine - reported) <= 0.01 * data["gguf"]["token_embd_bytes"] / MIB + alignment + 2 * PRINT_ROUNDING_MIB
