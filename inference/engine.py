"""One in-process model per process: load (from the converted cache), stream tokens with metrics, bound concurrency.

`get_engine()` returns the process-wide engine. `Engine.stream()` is a plain generator that runs the generation in
the calling thread and checks a cancel event between tokens; the views run it in a worker thread (ASGI) or directly
(WSGI). `Slots` bounds how many generations run at once and how many may wait.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from inference.conf import DemoSettings, load_settings
from inference.loader import (
    ModelSource,
    configured_file,
    default_source,
    ensure_converted,
    load_int8,
    source_for,
)
from inference.slots import Busy, Slots  # noqa: F401 (moved to inference.slots; re-exported)
from inference.threads import ThreadGovernor

logger = logging.getLogger(__name__)

LOADING, READY, FAILED, IDLE = "loading", "ready", "failed", "idle"


class EngineNotReady(Exception):
    pass


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class Metrics:
    prompt_tokens: int = 0
    tokens_generated: int = 0
    ttft_ms: float = 0.0  # request start (after the slot) to the first generated token
    prompt_tps: float = 0.0  # prompt tokens / prefill seconds
    decode_tps: float = 0.0  # tokens after the first / seconds after the first
    total_s: float = 0.0
    # The highest resident memory of the process during this generation (VmHWM reset at its start; where the kernel
    # refuses the reset, the highest RSS sampled at each token). Not the process's lifetime peak.
    peak_rss_bytes: int = 0
    rss_before_bytes: int = 0  # resident memory when the generation started
    stop_reason: str = ""  # "eos", "max_new_tokens", "wall_time", "cancelled"
    threads: list[int] = field(default_factory=list)  # decode threads used, in order (inference.threads)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TokenEvent:
    text: str  # the new text since the previous event (complete UTF-8 characters only)
    index: int  # 1-based count of generated tokens so far
    tps: float  # running decode tokens/sec


@dataclass(frozen=True)
class DoneEvent:
    metrics: Metrics


class _TextAssembler:
    """Decode the whole sequence each time and emit only the new, complete characters."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character not finished yet
            return ""
        new = text[len(self.emitted) :] if text.startswith(self.emitted) else text
        self.emitted = text
        return new


def sample_next(logits: Any, *, temperature: float, top_p: float, generator: Any = None) -> int:
    import torch

    logits = logits.float().reshape(-1)
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p >= 1.0:
        return _draw(probs, generator)
    tokens, kept = nucleus(probs, top_p)
    return int(tokens[_draw(kept, generator)])


def _draw(weights: Any, generator: Any) -> int:
    """An index drawn with probability proportional to `weights` (inverse CDF: one cumulative sum and a binary
    search, where torch.multinomial took several ms over Gemma's 262,144 tokens)."""
    import torch

    cumulative = torch.cumsum(weights, dim=0)
    point = torch.rand((), generator=generator) * cumulative[-1]
    return min(int(torch.searchsorted(cumulative, point, right=True)), weights.numel() - 1)


NUCLEUS_TOPK_LIMIT = 4096
_NUCLEUS_BINS = 4096


def nucleus(probs: Any, top_p: float, *, first_k: int = 64) -> tuple[Any, Any]:
    """The smallest set of most likely tokens whose probability reaches `top_p` (at least one): (token ids, their
    probabilities).

    The set is usually a few dozen tokens of Gemma's 262,144: they are looked for among the `first_k` most likely
    (torch.topk), and k grows only while those do not reach top_p. Any token past the k-th has at least the k best
    before it, so once they reach top_p the set is the one a full sort gives. A flat distribution (hot sampling) can
    put most of the vocabulary in the set; past NUCLEUS_TOPK_LIMIT it is found from a histogram instead, since
    sorting 262,144 probabilities took about 20 ms a token here.
    """
    import torch

    k = first_k
    while k <= NUCLEUS_TOPK_LIMIT and k < probs.numel():
        top, order = torch.topk(probs, k)
        top64 = top.double()  # sums in double: a top_p such as 0.999999 is past float32's resolution
        before = torch.cumsum(top64, dim=0) - top64  # probability of the tokens ranked above each one
        if float(before[-1] + top64[-1]) >= top_p:
            keep = before < top_p
            keep[0] = True
            return order[keep], top[keep]
        k *= 8
    return _nucleus_by_histogram(probs, top_p)


def _nucleus_by_histogram(probs: Any, top_p: float) -> tuple[Any, Any]:
    """The same set without sorting the vocabulary: bin the tokens by log-probability, weighted by probability; every
    bin above the one where the mass from the top reaches top_p is in; that bin alone is sorted to finish the set."""
    import torch

    log_p = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    high = float(log_p.max())
    low = max(float(log_p.min()), high - 80.0)  # below e^-80 of the best, tokens share the lowest bin
    width = (high - low) / _NUCLEUS_BINS or 1.0
    bins = ((log_p - low) / width).floor_().clamp_(0, _NUCLEUS_BINS - 1).long()
    mass = torch.bincount(bins, weights=probs.double(), minlength=_NUCLEUS_BINS)
    from_top = torch.flip(torch.cumsum(torch.flip(mass, [0]), dim=0), [0])  # mass of this bin and every higher one
    boundary = int(torch.nonzero(from_top >= top_p).max()) if bool((from_top >= top_p).any()) else 0
    above_mass = float(from_top[boundary + 1]) if boundary + 1 < _NUCLEUS_BINS else 0.0
    in_boundary = torch.nonzero(bins == boundary).flatten()
    band, order = torch.sort(probs[in_boundary], descending=True)
    keep = above_mass + torch.cumsum(band.double(), dim=0) - band.double() < top_p
    keep[0] = True
    tokens = torch.cat([torch.nonzero(bins > boundary).flatten(), in_boundary[order[keep]]])
    return tokens, probs[tokens]


class Engine:
    def __init__(self, settings: DemoSettings | None = None) -> None:
        self.settings = settings or load_settings()
        self.state = IDLE
        self.error = ""
        self.model: Any = None
        self.tokenizer: Any = None
        self.source: ModelSource | None = None
        self._configured: tuple[str, str] | None = None  # file name and quant named by the settings
        self.model_dir: Path | None = None
        self.load_seconds: float | None = None
        # load_seconds split: reading (and on the first start converting) the model files, building the decode step
        # (the C++ extension, the pool, the 4-bit head), warming it up
        self.load_split: dict[str, float] = {}
        self.rss_after_load_bytes: int | None = None
        self.rss_before_load_bytes: int | None = None
        self.n_params: int = 0
        self.slots = Slots(self.settings.max_concurrent, self.settings.max_queue)
        self._load_lock = threading.Lock()
        self.last_metrics: Metrics | None = None  # the latest finished generation's, cancelled ones included
        self._gen_lock = threading.Lock()  # one forward pass at a time on this model object
        self._fast: Any = None
        self.fast_path = "off"  # "compiling", "ready", "failed": the compiled static-cache decode step
        # Chooses the decode threads per generation from what the machine has free (set once the model is loaded).
        self.governor = ThreadGovernor(self.settings.n_threads, _torch_threads)

    @classmethod
    def from_loaded(
        cls, model: Any, tokenizer: Any, *, settings: DemoSettings | None = None, source: ModelSource | None = None
    ) -> Engine:
        """An engine around a model already in memory (the tiny test models, a caller's own model)."""
        engine = cls(settings)
        engine.model, engine.tokenizer, engine.source = model.eval(), tokenizer, source
        engine.n_params = sum(p.numel() for p in model.parameters())
        engine.state = READY
        return engine

    # -- loading -----------------------------------------------------------------------------------------------
    def start_loading(self) -> None:
        """Load in a background thread (returns at once); status() reports progress."""
        if self.state in (LOADING, READY):
            return
        self.state = LOADING
        threading.Thread(target=self._load_quietly, name="rigfit-engine-load", daemon=True).start()

    def _load_quietly(self) -> None:
        try:
            self.load()
        except Exception:  # reported through status(); the thread must not die silently
            logger.exception("demo model failed to load")

    def load(self) -> Engine:
        with self._load_lock:
            if self.state == READY:
                return self
            self.state = LOADING
            started = time.perf_counter()
            self.rss_before_load_bytes = psutil.Process().memory_info().rss
            try:
                self._load()
            except Exception as exc:
                self.state = FAILED
                self.error = f"{type(exc).__name__}: {exc}"
                raise
            self.load_seconds = time.perf_counter() - started
            self.rss_after_load_bytes = psutil.Process().memory_info().rss
            self.state = READY
            logger.info("demo model ready in %.1f s, rss %.0f MB", self.load_seconds, self.rss_after_load_bytes / 1e6)
            return self

    def _load(self) -> None:
        read_started = time.perf_counter()  # importing torch and the loaders counts as reading
        import torch

        from inference.kernels import release_free_memory
        from inference.tokenizer import FastTokenizer

        torch.set_num_threads(self.settings.n_threads)
        cache_dir = self.settings.cache_dir
        path = self.settings.model_path
        self.source = source_for(path) if path else default_source(cache_dir)
        self.model_dir = ensure_converted(self.source, cache_dir)
        if (self.model_dir / "tokenizer.json").exists():
            self.tokenizer = FastTokenizer.from_dir(self.model_dir)
        else:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        release_free_memory()  # the tokenizer's JSON parse leaves ~200 MB of freed heap behind
        model = self._load_lite() if self.settings.quantize and fast_decode_enabled() else None
        if model is not None:
            pass
        elif self.settings.quantize:
            model = load_int8(self.model_dir)
        else:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32)
        model.eval()
        self.n_params = int(getattr(model, "rigfit_n_params", 0)) or sum(p.numel() for p in model.parameters())
        release_free_memory()
        self.model = model
        build_started = time.perf_counter()
        if self.settings.quantize and fast_decode_enabled():
            from inference import native
            from inference.fastpath import GemmaFastDecoder, supports

            max_len = max(self.settings.max_prompt_tokens + self.settings.max_new_tokens + 1, 640)
            module = native.load() if supports(model) else None
            if module is not None:
                decoder = GemmaFastDecoder(
                    model,
                    max_len=max_len,
                    native=module,
                    head_screen=self.settings.head_screen,
                    max_threads=self.settings.n_threads,
                )
                if decoder.backend == "native":  # the whole decode step in one C++ call: nothing to compile
                    self._fast = decoder
                    self.fast_path = "ready"
                    self.governor = ThreadGovernor(
                        self.settings.n_threads, decoder.set_threads, sampler=_generation_sampler(decoder)
                    )
        warm_started = time.perf_counter()
        self._warm_up()
        release_free_memory()  # the warm-up prefill's activations, freed but still held by malloc
        self.load_split = {
            "read_s": build_started - read_started,
            "build_s": warm_started - build_started,
            "warmup_s": time.perf_counter() - warm_started,
        }
        if self.settings.quantize and fast_decode_enabled() and self._fast is None:
            from inference.fastpath import GemmaFastDecoder, supports

            if supports(model):
                max_len = self.settings.max_prompt_tokens + self.settings.max_new_tokens + 1
                decoder = GemmaFastDecoder(model, max_len=max(max_len, 640), compile=True)
                # Compiling the whole decode step takes 10-40 s on 2 cores: the model is ready before that, on
                # transformers' own decode path, and switches to the compiled one when it is done.
                self.fast_path = "compiling"
                threading.Thread(target=self._compile_fast, args=(decoder,), daemon=True, name="rigfit-compile").start()

    def _load_lite(self) -> Any:
        """The int8 Gemma 3 model without transformers (inference.lite), where the native decode step serves it."""
        import gc

        from inference import lite, native
        from inference.kernels import release_free_memory
        from inference.loader import exclusive

        if self.model_dir is None or not lite.eligible(self.model_dir) or native.load() is None:
            return None
        path = lite.lite_path(self.model_dir)
        with exclusive(path.with_name(f"{path.name}.lock")):
            if not path.exists():  # once per converted model: from the int8 pickle (this needs transformers)
                full = load_int8(self.model_dir)
                lite.write(full, path)
                del full
                lite.remove_older_versions(self.model_dir)
                gc.collect()
                release_free_memory()
        return lite.load(path)

    def _compile_fast(self, decoder: Any) -> None:
        import torch

        try:
            with torch.inference_mode():
                decoder.prefill(torch.tensor([[2, 3]], dtype=torch.long))
                for token in (4, 5):
                    decoder.decode(token)
        except Exception:
            logger.exception("the compiled decode step failed; staying on transformers' decode path")
            self.fast_path = "failed"
            return
        self._fast = decoder
        self.fast_path = "ready"

    def wait_fast_path(self, timeout_s: float = 300.0) -> bool:
        """Block until the compiled decode step is ready (benchmarks, tests); False if it is not used."""
        deadline = time.monotonic() + timeout_s
        while self.fast_path == "compiling" and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.fast_path == "ready"

    def new_session(self, max_len: int, *, temperature: float = 0.0) -> Any:
        """A decode session: the compiled static-cache fast path when it fits, transformers' own otherwise.
        `temperature`: the sampling temperature the session's logits will be divided by (0: greedy)."""
        if self._fast is not None and max_len <= self._fast.max_len:
            self._fast.use_temperature(temperature)
            return self._fast  # reused: one compiled graph; callers hold _gen_lock, positions restart at prefill
        if self._fast is not None and self._fast.backend == "native" and not hasattr(self.model, "forward"):
            raise ValueError(f"{max_len} tokens do not fit the {self._fast.max_len}-token KV cache")
        return DecodeSession(self.model, max_len=max_len)

    def _warm_up(self) -> None:
        """Run one prefill and a few decode steps so the fused kernels are compiled before the first visitor."""
        import torch

        with torch.inference_mode():
            session = self.new_session(8)
            session.prefill(torch.tensor([[self.tokenizer.eos_token_id or 1, 2]], dtype=torch.long))
            for token in (3, 4):
                session.decode(token)

    def ensure_ready(self) -> None:
        if self.state != READY:
            raise EngineNotReady(self.status_text())

    # -- status ------------------------------------------------------------------------------------------------
    def status_text(self) -> str:
        return {
            IDLE: "The model loads on first use.",
            LOADING: "The model is loading…",
            READY: "Ready.",
            FAILED: f"The model failed to load: {self.error}",
        }[self.state]

    def status(self) -> dict[str, Any]:
        source = self.source
        return {
            "state": self.state,
            "message": self.status_text(),
            "error": self.error,
            "model_file": source.filename if source else self._configured_file()[0],
            "quant": self.quant_label,
            "weights": "int8 weight-only" if self.settings.quantize else "fp32",
            "output_head": self.output_head_label,
            "fast_path": self.fast_path,
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 2),
            "load_read_s": _rounded(self.load_split.get("read_s")),
            "load_build_s": _rounded(self.load_split.get("build_s")),
            "load_warmup_s": _rounded(self.load_split.get("warmup_s")),
            "threads": self.governor.threads or None,
            "rss_bytes": psutil.Process().memory_info().rss,
            "model_rss_bytes": (
                self.rss_after_load_bytes - self.rss_before_load_bytes
                if self.rss_after_load_bytes and self.rss_before_load_bytes
                else None
            ),
            "running": self.slots.running,
            "waiting": self.slots.waiting,
            "max_concurrent": self.slots.limit,
            "max_queue": self.slots.max_queue,
            "max_prompt_tokens": self.settings.max_prompt_tokens,
            "max_new_tokens": self.settings.max_new_tokens,
            # How the last generation ended ("eos", "length", "cancelled", ...): lets a client check a cancellation.
            "last_stop_reason": self.last_metrics.stop_reason if self.last_metrics else None,
            "last_tokens_generated": self.last_metrics.tokens_generated if self.last_metrics else None,
        }

    @property
    def output_head_label(self) -> str:
        if not self.settings.quantize:
            return "fp32"
        if self.state != READY:
            return ""  # decided when the model has loaded
        if self._fast is not None and self._fast.head_screened:
            return "int8, screened from a 4-bit copy"
        return "int8"

    @property
    def quant_label(self) -> str:
        return self.source.quant if self.source else self._configured_file()[1]

    def _configured_file(self) -> tuple[str, str]:
        if self.model is not None:  # handed a loaded model (Engine.from_loaded): no file behind it
            return "", ""
        if self._configured is None:
            self._configured = configured_file(self.settings.model_path)
        return self._configured

    # -- generation --------------------------------------------------------------------------------------------
    def count_tokens(self, prompt: str) -> int:
        self.ensure_ready()
        return len(self.tokenizer(prompt)["input_ids"])

    def stream(
        self, params: GenerationParams, *, cancel: threading.Event | None = None
    ) -> Iterator[TokenEvent | DoneEvent]:
        """Yield TokenEvents as tokens are produced, then one DoneEvent with the metrics."""
        import torch

        from inference.kernels import release_free_memory

        self.ensure_ready()
        cancel = cancel or threading.Event()
        settings = self.settings
        max_new = min(params.max_new_tokens, settings.max_new_tokens)
        proc = psutil.Process()
        metrics = Metrics()
        started = time.perf_counter()
        deadline = started + settings.max_wall_s
        generator = None
        if params.seed is not None:
            generator = torch.Generator().manual_seed(params.seed)
        with self._gen_lock, torch.inference_mode():
            peak = PeakRss(proc)
            metrics.rss_before_bytes = peak.start_bytes
            governor = self.governor
            governor.start()
            input_ids = self.tokenizer(params.prompt, return_tensors="pt")["input_ids"]
            metrics.prompt_tokens = int(input_ids.shape[1])
            if metrics.prompt_tokens > settings.max_prompt_tokens:
                limit = settings.max_prompt_tokens
                raise ValueError(f"The prompt has {metrics.prompt_tokens} tokens; the limit is {limit}.")
            eos = _eos_ids(self.model, self.tokenizer)
            assembler = _TextAssembler(self.tokenizer)
            step = self.new_session(metrics.prompt_tokens + max_new + 1, temperature=params.temperature)
            logits = step.prefill(input_ids)
            first_at = time.perf_counter()
            metrics.prompt_tps = metrics.prompt_tokens / max(first_at - started, 1e-9)
            stop = "max_new_tokens"
            last_at = first_at
            try:
                for index in range(1, max_new + 1):
                    token = sample_next(logits, temperature=params.temperature, top_p=params.top_p, generator=generator)
                    now = time.perf_counter()
                    if index == 1:
                        metrics.ttft_ms = (now - started) * 1000
                        first_at = now
                    last_at = now
                    if token in eos:
                        stop = "eos"
                        break
                    metrics.tokens_generated = index
                    decode_s = now - first_at
                    tps = (index - 1) / decode_s if index > 1 and decode_s > 0 else 0.0
                    yield TokenEvent(text=assembler.push(token), index=index, tps=tps)
                    if cancel.is_set():
                        stop = "cancelled"
                        break
                    if time.perf_counter() > deadline:
                        stop = "wall_time"
                        break
                    if index == max_new:
                        break
                    peak.sample()
                    governor.tick()
                    logits = step.decode(token)
            except GeneratorExit:  # the consumer closed the stream (WSGI disconnect)
                stop = "cancelled"
                raise
            finally:
                metrics.stop_reason = stop
                decoded_after_first = metrics.tokens_generated - 1
                decode_s = last_at - first_at
                metrics.decode_tps = decoded_after_first / decode_s if decoded_after_first > 0 and decode_s > 0 else 0.0
                metrics.total_s = time.perf_counter() - started
                metrics.peak_rss_bytes = peak.finish()
                metrics.threads = _distinct_runs(governor.history)
                self.last_metrics = metrics
                # A long prompt's prefill activations (tens of MB) would otherwise stay resident between requests.
                release_free_memory()
        yield DoneEvent(metrics)

    def generate_text(self, params: GenerationParams) -> tuple[str, Metrics]:
        parts: list[str] = []
        metrics = Metrics()
        for event in self.stream(params):
            if isinstance(event, TokenEvent):
                parts.append(event.text)
            else:
                metrics = event.metrics
        return "".join(parts), metrics

    def greedy_ids(self, prompt: str, n: int) -> list[int]:
        """The first n greedy token ids (quality guard and tests)."""
        import torch

        self.ensure_ready()
        with self._gen_lock, torch.inference_mode():
            input_ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
            self.governor.start()
            step = self.new_session(input_ids.shape[1] + n + 1)
            logits = step.prefill(input_ids)
            out: list[int] = []
            for _ in range(n):
                token = int(torch.argmax(logits))
                out.append(token)
                self.governor.tick()
                logits = step.decode(token)
        return out


class DecodeSession:
    """Prefill once, then one token per call, through the model's KV cache; returns last-position logits."""

    def __init__(self, model: Any, *, max_len: int) -> None:
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.position = 0
        self.max_len = max_len

    def prefill(self, input_ids: Any) -> Any:
        out = self.model(input_ids=input_ids, cache=self.cache, use_cache=True, logits_to_keep=1)
        self.position = int(input_ids.shape[1])
        return out.logits[0, -1]

    def decode(self, token: int) -> Any:
        import torch

        ids = torch.tensor([[token]], dtype=torch.long)
        out = self.model(input_ids=ids, cache=self.cache, use_cache=True, logits_to_keep=1)
        self.position += 1
        return out.logits[0, -1]


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


class PeakRss:
    """The highest resident memory from now until `finish()`: Linux's VmHWM, reset here by writing 5 to
    /proc/self/clear_refs; where that is refused (another OS, a locked-down /proc), the highest RSS `sample()` saw."""

    def __init__(self, proc: psutil.Process, proc_dir: Path = Path("/proc/self")) -> None:
        self.proc = proc
        self.proc_dir = proc_dir
        self.start_bytes = proc.memory_info().rss
        self.sampled = self.start_bytes
        try:
            (proc_dir / "clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False

    def sample(self) -> None:
        if not self.reset:
            self.sampled = max(self.sampled, self.proc.memory_info().rss)

    def finish(self) -> int:
        now = self.proc.memory_info().rss
        if self.reset:
            hwm = _status_kib(self.proc_dir / "status", "VmHWM")
            if hwm is not None:
                return max(hwm * 1024, now)
        return max(self.sampled, now)


def _status_kib(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _distinct_runs(values: list[int]) -> list[int]:
    """[2, 2, 1, 1, 2] -> [2, 1, 2]: the thread counts a generation went through."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _generation_sampler(decoder: Any) -> Any:
    """/proc/stat samples whose own CPU time is the generating thread's and the native step's helpers': the web
    server's other threads in this process count as load like other processes."""
    from inference.threads import take_sample

    def sample() -> Any:
        return take_sample(own_cpu=decoder.cpu_seconds, owner=threading.get_native_id())

    return sample


def _torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def nan_safe(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def fast_decode_enabled() -> bool:
    import os

    return os.environ.get("RIGFIT_DEMO_FAST_DECODE", "1").strip().lower() not in {"0", "false", "no", "off"}


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine (created on first call, not loaded until start_loading()/load())."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine()
        return _engine


def set_engine(engine: Engine | None) -> None:
    """Swap the process-wide engine (tests share one loaded engine through this)."""
    global _engine
    with _engine_lock:
        _engine = engine
