from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def catalog(db):
    """A small catalog: Gemma 3 270M and a Llama 8B shape with quant ladders, a 24 GB GPU, an 8 GB GPU, a Mac, a CPU."""
    from tests.factories import GEMMA3_270M_SHAPE, make_hardware, make_model, make_quantization

    gemma = make_model(
        name="Gemma 3 270M",
        slug="gemma-3-270m",
        family="gemma3",
        publisher="Google",
        featured=True,
        ollama_tag="gemma3:270m",
        gguf_repo="ggml-org/gemma-3-270m-GGUF",
        **GEMMA3_270M_SHAPE,
    )
    llama = make_model(
        name="Llama 3.1 8B",
        slug="llama-3-1-8b",
        family="llama",
        publisher="Meta",
        featured=True,
        ollama_tag="llama3.1:8b",
        gguf_repo="bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
    )
    for model in (gemma, llama):
        for name, bits in (("F16", 16.0), ("Q8_0", 8.5), ("Q6_K", 6.56), ("Q4_K_M", None), ("Q2_K", None)):
            make_quantization(model, name=name, bits_per_weight=bits)
    make_quantization(gemma, name="IQ4_XS", bits_per_weight=None, file_bytes=253_000_000)
    devices = {
        "rtx4090": make_hardware(name="GeForce RTX 4090", slug="geforce-rtx-4090", popular=True),
        "rtx4060": make_hardware(
            name="GeForce RTX 4060",
            slug="geforce-rtx-4060",
            memory_bytes=8 * 1024**3,
            bandwidth_gbps=272.0,
            fp16_tflops=15.1,
            popular=True,
        ),
        "m2max": make_hardware(
            name="Apple M2 Max 32GB",
            slug="apple-m2-max-32gb",
            vendor="Apple",
            kind="unified",
            memory_bytes=32 * 1024**3,
            bandwidth_gbps=400.0,
            fp16_tflops=27.2,
        ),
        "cpu": make_hardware(
            name="Ryzen 7 7700X (DDR5-5200)",
            slug="ryzen-7-7700x",
            vendor="AMD",
            kind="cpu",
            memory_bytes=32 * 1024**3,
            bandwidth_gbps=83.2,
            fp16_tflops=None,
        ),
    }
    return {"gemma": gemma, "llama": llama, **devices}
