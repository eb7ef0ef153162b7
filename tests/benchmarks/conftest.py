from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import services
from benchmarks.models import ApiToken, BenchmarkRun, Channel
from catalog.models import HardwareKind
from tests.factories import GEMMA3_270M_SHAPE, make_hardware, make_model, make_quantization

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "llama-bench"


@pytest.fixture
def gemma(db):
    model = make_model(
        name="Gemma 3 270M", slug="gemma-3-270m", family="gemma3", publisher="Google", **GEMMA3_270M_SHAPE
    )
    make_quantization(
        model, name="Q4_K_M", bits_per_weight=None, file_bytes=253_113_024, file_name="gemma-3-270m-q4_k_m.gguf"
    )
    return model


@pytest.fixture
def epyc(db):
    # Bandwidth and compute are test figures (2 DDR4-3200 channels = 51.2 GB/s; 2 cores x 2 FMA units x 16 FP32
    # lanes x 2 FLOP x 3.0 GHz = 0.384 TFLOPS), not claims about any machine.
    return make_hardware(
        name="Test EPYC",
        slug="test-epyc",
        vendor="AMD",
        kind=HardwareKind.CPU,
        bandwidth_gbps=51.2,
        memory_bytes=32 * 1024**3,
        fp16_tflops=None,
        matrix_tflops=0.384,
        aliases=["AMD EPYC test box"],
    )


@pytest.fixture
def gpu(db):
    return make_hardware(name="Test GPU 1008", slug="test-gpu-1008", bandwidth_gbps=1008.0)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="s3cret-pass-42")


@pytest.fixture
def staff(django_user_model):
    """A moderator: in the "Benchmark moderators" group, which holds the moderate permission."""
    user = django_user_model.objects.create_user(username="mod", password="s3cret-pass-42", is_staff=True)
    user.groups.add(services.moderators_group())
    return user


@pytest.fixture
def token(user) -> tuple[ApiToken, str]:
    return services.token_create(user=user, name="laptop")


def run_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model_slug": "gemma-3-270m",
        "quant": "Q4_K_M",
        "hardware": "test-epyc",
        "runtime": "llama.cpp",
        "backend": "cpu",
        "n_prompt": 0,
        "n_gen": 128,
        "avg_ts": 50.0,
        "stddev_ts": 1.0,
        "samples_ts": [49.0, 50.0, 51.0],
        "n_threads": 2,
    }
    data.update(overrides)
    return data


def make_run(*, user=None, channel: str = Channel.API, **overrides: Any) -> BenchmarkRun:
    """A stored run through the real service (so status and checks apply)."""
    run, _ = services.submit_run(data=run_data(**overrides), channel=channel, submitter=user)
    return run


def read_fixture(name: str) -> str:
    return (FIXTURES / name).read_text()
