from __future__ import annotations

import dataclasses
import socket
import threading
import time
from pathlib import Path

import pytest

from inference.conf import load_settings
from inference.engine import Engine, set_engine


@pytest.fixture(scope="session")
def tiny_parts():
    from inference.tiny import make_byte_tokenizer, make_tiny_causal_lm

    tokenizer = make_byte_tokenizer()
    return make_tiny_causal_lm(len(tokenizer)), tokenizer


@pytest.fixture
def make_tiny_engine(tiny_parts):
    """An engine around the tiny random Gemma 3 model, installed as the process-wide engine."""
    made: list[Engine] = []

    def make(**overrides) -> Engine:
        settings = dataclasses.replace(load_settings(), **overrides)
        model, tokenizer = tiny_parts
        engine = Engine.from_loaded(model, tokenizer, settings=settings)
        set_engine(engine)
        made.append(engine)
        return engine

    yield make
    set_engine(None)


@pytest.fixture
def tiny_engine(make_tiny_engine) -> Engine:
    return make_tiny_engine(max_new_tokens=64, max_prompt_tokens=64, max_concurrent=1, max_queue=1)


@pytest.fixture(scope="session")
def native_module():
    """The C++ step (built once per machine; torch caches the build)."""
    from inference import native

    return native.load()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    """A 6-layer Gemma 3 GGUF with random weights in the packaged model's block types (inference.tiny)."""
    from inference.tiny import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-gemma3-Q4_K_M.gguf")


@pytest.fixture
def gguf_engine(tiny_gguf, native_module) -> Engine:
    """An engine loaded from the tiny GGUF through the real load path."""
    settings = dataclasses.replace(
        load_settings(), model_path=tiny_gguf, max_new_tokens=32, max_prompt_tokens=48, n_threads=2
    )
    return Engine(settings).load()


@pytest.fixture(scope="session")
def real_engine() -> Engine:
    """The real default model (Gemma 3 270M Q4_K_M), loaded once per test session from its GGUF in var/."""
    settings = dataclasses.replace(
        load_settings(),
        model_path=None,
        cache_dir=Path(__file__).resolve().parents[2] / "var" / "models",
        max_new_tokens=32,
    )
    return Engine(settings).load()


@pytest.fixture
def live_asgi_url():
    """This project's ASGI application served by uvicorn on a free loopback port, in a thread."""
    import uvicorn

    from config.asgi import application

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
