"""Tiny factories for test data (no factory library): each returns a saved object with sane defaults."""

from __future__ import annotations

import itertools
from typing import Any

from catalog.models import Hardware, HardwareKind, Modality, Model, Quantization

_counter = itertools.count(1)

GEMMA3_270M_SHAPE: dict[str, Any] = {
    # google/gemma-3-270m config.json (text model): 18 layers, hidden 640, 4 heads, 1 KV head, head_dim 256,
    # vocab 262144, sliding window 512 on 5 of every 6 layers, tied embeddings.
    "n_params": 268_098_176,
    "n_layers": 18,
    "hidden_size": 640,
    "intermediate_size": 2048,
    "n_heads": 4,
    "n_kv_heads": 1,
    "head_dim": 256,
    "vocab_size": 262_144,
    "tied_embeddings": True,
    "sliding_window": 512,
    "swa_layers": [i for i in range(18) if (i + 1) % 6 != 0],
    "context_length": 32_768,
}

LLAMA_8B_SHAPE: dict[str, Any] = {
    "n_params": 8_030_261_248,
    "n_layers": 32,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "n_heads": 32,
    "n_kv_heads": 8,
    "head_dim": 128,
    "vocab_size": 128_256,
    "tied_embeddings": False,
    "context_length": 131_072,
}


def make_model(**overrides: Any) -> Model:
    n = next(_counter)
    fields: dict[str, Any] = {
        "name": f"Test Model {n}",
        "slug": f"test-model-{n}",
        "family": "test",
        "publisher": "Test Lab",
        "license": "apache-2.0",
        "modality": Modality.TEXT,
        "source_repo": f"test/test-model-{n}",
        **LLAMA_8B_SHAPE,
    }
    fields.update(overrides)
    model = Model(**fields)
    model.full_clean()
    model.save()
    return model


def make_quantization(model: Model, **overrides: Any) -> Quantization:
    fields: dict[str, Any] = {"name": "Q4_K_M", "format": "gguf", "bits_per_weight": 4.89}
    fields.update(overrides)
    quant = Quantization(model=model, **fields)
    quant.full_clean()
    quant.save()
    return quant


def make_hardware(**overrides: Any) -> Hardware:
    n = next(_counter)
    fields: dict[str, Any] = {
        "name": f"Test GPU {n}",
        "slug": f"test-gpu-{n}",
        "vendor": "NVIDIA",
        "kind": HardwareKind.GPU,
        "memory_bytes": 24 * 1024**3,
        "bandwidth_gbps": 1008.0,
        "fp16_tflops": 82.6,
        "release_year": 2022,
    }
    fields.update(overrides)
    hardware = Hardware(**fields)
    hardware.full_clean()
    hardware.save()
    return hardware


def make_catalog() -> dict[str, Any]:
    """A small catalog: Gemma 3 270M and a Llama 8B shape with quant ladders, a 24 GB GPU, an 8 GB GPU, a Mac, a CPU."""
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
