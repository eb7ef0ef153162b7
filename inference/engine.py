"""One in-process model per process: load it straight from its GGUF file, stream tokens with metrics.

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

import numpy as np
import psutil

from inference.conf import DemoSettings, load_settings
from inference.loader import ModelSource, configured_file, default_source, source_for
from inference.native import NativeUnavailable
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
    generation_rss_bytes: int = 0  # peak_rss_bytes - rss_before_bytes: what this generation itself added
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


def sample_next(logits: Any, *, temperature: float, top_p: float, generator: np.random.Generator | None = None) -> int:
    """The next token from one row of logits (numpy; a torch tensor is converted): greedy at temperature 0, else
    drawn from softmax(logits / temperature) within the top-p nucleus."""
    logits = np.asarray(logits, dtype=np.float32).reshape(-1)
    if temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits / np.float32(temperature)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if top_p >= 1.0:
        return _draw(probs, generator)
    tokens, kept = nucleus(probs, top_p)
    return int(tokens[_draw(kept, generator)])


def _draw(weights: np.ndarray, generator: np.random.Generator | None) -> int:
    """An index drawn with probability proportional to `weights` (inverse CDF: one cumulative sum and a binary
    search)."""
    generator = generator or np.random.default_rng()
    cumulative = np.cumsum(weights, dtype=np.float64)
    point = generator.random() * cumulative[-1]
    return min(int(np.searchsorted(cumulative, point, side="right")), len(weights) - 1)


NUCLEUS_TOPK_LIMIT = 4096
_NUCLEUS_BINS = 4096


def nucleus(probs: np.ndarray, top_p: float, *, first_k: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The smallest set of most likely tokens whose probability reaches `top_p` (at least one): (token ids, their
    probabilities), most likely first.

    The set is usually a few dozen tokens of Gemma's 262,144: they are looked for among the `first_k` most likely
    (np.argpartition), and k grows only while those do not reach top_p. Any token past the k-th has at least the k
    best before it, so once they reach top_p the set is the one a full sort gives. A flat distribution (hot sampling)
    can put most of the vocabulary in the set; past NUCLEUS_TOPK_LIMIT it is found from a histogram instead of a
    sort of the whole vocabulary.
    """
    k = first_k
    while k <= NUCLEUS_TOPK_LIMIT and k < probs.size:
        part = np.argpartition(-probs, k - 1)[:k]
        order = part[np.argsort(-probs[part], kind="stable")]
        top = probs[order]
        top64 = top.astype(np.float64)  # sums in double: a top_p such as 0.999999 is past float32's resolution
        before = np.cumsum(top64) - top64  # probability of the tokens ranked above each one
        if float(before[-1] + top64[-1]) >= top_p:
            keep = before < top_p
            keep[0] = True
            return order[keep], top[keep]
        k *= 8
    return _nucleus_by_histogram(probs, top_p)


def _nucleus_by_histogram(probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The same set without sorting the vocabulary: bin the tokens by log-probability, weighted by probability; every
    bin above the one where the mass from the top reaches top_p is in; that bin alone is sorted to finish the set."""
    log_p = np.log(np.maximum(probs, np.finfo(probs.dtype).tiny))
    high = float(log_p.max())
    low = max(float(log_p.min()), high - 80.0)  # below e^-80 of the best, tokens share the lowest bin
    width = (high - low) / _NUCLEUS_BINS or 1.0
    bins = np.clip(np.floor((log_p - low) / width), 0, _NUCLEUS_BINS - 1).astype(np.int64)
    mass = np.bincount(bins, weights=probs.astype(np.float64), minlength=_NUCLEUS_BINS)
    from_top = np.cumsum(mass[::-1])[::-1]  # mass of this bin and every higher one
    reached = np.flatnonzero(from_top >= top_p)
    boundary = int(reached.max()) if reached.size else 0
    above_mass = float(from_top[boundary + 1]) if boundary + 1 < _NUCLEUS_BINS else 0.0
    in_boundary = np.flatnonzero(bins == boundary)
    order = np.argsort(-probs[in_boundary], kind="stable")
    band = probs[in_boundary][order].astype(np.float64)
    keep = above_mass + np.cumsum(band) - band < top_p
    keep[0] = True
    tokens = np.concatenate([np.flatnonzero(bins > boundary), in_boundary[order[keep]]])
    return tokens, probs[tokens]


class Engine:
    def __init__(self, settings: DemoSettings | None = None) -> None:
        self.settings = settings or load_settings()
        self.state = IDLE
        self.error = ""
        self._model: Any = None
        self.tokenizer: Any = None
        self.source: ModelSource | None = None
        self._configured: tuple[str, str] | None = None  # file name and quant named by the settings
        self.load_seconds: float | None = None
        # load_seconds split: reading the GGUF (header, tokenizer), building the step (of which compile_s was the
        # C++ extension's build or cached import), warming it up
        self.load_split: dict[str, float] = {}
        self.rss_after_load_bytes: int | None = None
        self.rss_before_load_bytes: int | None = None
        self.n_params: int = 0
        self.slots = Slots(self.settings.max_concurrent, self.settings.max_queue)
        self._load_lock = threading.Lock()
        self.last_metrics: Metrics | None = None  # the latest finished generation's, cancelled ones included
        self._gen_lock = threading.Lock()  # one generation at a time on the model's KV cache
        # Chooses the decode threads per generation from what the machine has free (set once the model is loaded).
        self.governor = ThreadGovernor(self.settings.n_threads, lambda threads: None)

    @classmethod
    def from_loaded(
        cls, model: Any, tokenizer: Any, *, settings: DemoSettings | None = None, source: ModelSource | None = None
    ) -> Engine:
        """An engine around a forward pass already built (tests: a tiny GGUF model, a scripted reference)."""
        engine = cls(settings)
        engine.model, engine.tokenizer, engine.source = model, tokenizer, source
        engine.n_params = int(getattr(engine.model, "n_params", 0))
        engine._use_threads(engine.model)
        engine.state = READY
        return engine

    @property
    def model(self) -> Any:
        """The forward pass: inference.gguf_model.GGUFModel, or in tests a stand-in with its methods (a transformers
        model given here is wrapped as inference.tiny.ReferenceStep)."""
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        if model is not None and not hasattr(model, "weights_label"):
            from inference.tiny import ReferenceStep

            model = ReferenceStep(model)
        self._model = model

    @property
    def max_len(self) -> int:
        return self.settings.max_prompt_tokens + self.settings.max_new_tokens + 1

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
                self._load(started)
            except Exception as exc:
                self.state = FAILED
                self.error = str(exc) if isinstance(exc, NativeUnavailable) else f"{type(exc).__name__}: {exc}"
                raise
            self.load_seconds = sum(self.load_split[k] for k in ("read_s", "build_s", "warmup_s"))
            self.rss_after_load_bytes = psutil.Process().memory_info().rss
            self.state = READY
            logger.info("demo model ready in %.1f s, rss %.0f MB", self.load_seconds, self.rss_after_load_bytes / 1e6)
            return self

    def _load(self, read_started: float) -> None:
        from inference import native
        from inference.gguf_model import GGUFModel, read_gguf
        from inference.gguf_tokenizer import GGUFTokenizer

        path = self.settings.model_path
        self.source = source_for(path) if path else default_source(self.settings.cache_dir)
        gguf = read_gguf(self.source.path)
        tokenizer = GGUFTokenizer(gguf.metadata)
        build_started = time.perf_counter()
        module = native.load(self.settings.cache_dir / "native")
        compiled = time.perf_counter()
        model = GGUFModel(gguf, max_len=self.max_len, max_threads=self.settings.n_threads, native=module)
        warm_started = time.perf_counter()
        model.forward([tokenizer.bos_token_id or 2, 3], 0)  # touches every weight page once
        model.forward([4], 2)
        self.model, self.tokenizer, self.n_params = model, tokenizer, model.n_params
        self._use_threads(model)
        self.load_split = {
            "read_s": build_started - read_started,
            "build_s": warm_started - build_started,
            "compile_s": compiled - build_started,
            "warmup_s": time.perf_counter() - warm_started,
        }

    def _use_threads(self, model: Any) -> None:
        if hasattr(model, "set_threads"):
            self.governor = ThreadGovernor(
                self.settings.n_threads, model.set_threads, sampler=_generation_sampler(model)
            )

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
            "weights": getattr(self.model, "weights_label", "") if self.model is not None else "",
            "output_head": getattr(self.model, "head_label", "") if self.state == READY else "",
            "fast_path": getattr(self.model, "isa", "") if self.state == READY else "",
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 2),
            "load_read_s": _rounded(self.load_split.get("read_s")),
            "load_build_s": _rounded(self.load_split.get("build_s")),
            "load_compile_s": _rounded(self.load_split.get("compile_s")),
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
        self.ensure_ready()
        cancel = cancel or threading.Event()
        settings = self.settings
        max_new = min(params.max_new_tokens, settings.max_new_tokens)
        proc = psutil.Process()
        metrics = Metrics()
        started = time.perf_counter()
        deadline = started + settings.max_wall_s
        generator = np.random.default_rng(params.seed)
        with self._gen_lock:
            peak = PeakRss(proc)
            metrics.rss_before_bytes = peak.start_bytes
            governor = self.governor
            ids = self.tokenizer(params.prompt)["input_ids"]
            metrics.prompt_tokens = len(ids)
            if metrics.prompt_tokens > settings.max_prompt_tokens:
                limit = settings.max_prompt_tokens
                raise ValueError(f"The prompt has {metrics.prompt_tokens} tokens; the limit is {limit}.")
            eos = _eos_ids(self.model, self.tokenizer)
            assembler = _TextAssembler(self.tokenizer)
            if hasattr(self.model, "use_temperature"):
                self.model.use_temperature(params.temperature)
            logits = self._prefill(ids)
            first_at = time.perf_counter()
            metrics.prompt_tps = metrics.prompt_tokens / max(first_at - started, 1e-9)
            stop = "max_new_tokens"
            last_at = first_at
            position = len(ids)
            decoded = False
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
                    # the decode threads are chosen once the first token is out: not part of its wait
                    governor.start() if index == 1 else governor.tick()
                    decoded = True
                    logits = self.model.forward([token], position)
                    position += 1
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
                metrics.generation_rss_bytes = max(0, metrics.peak_rss_bytes - metrics.rss_before_bytes)
                metrics.threads = _distinct_runs(governor.history) if decoded else []  # no decode step: none
                self.last_metrics = metrics
        yield DoneEvent(metrics)

    def _prefill(self, ids: list[int]) -> Any:
        """The prompt in one forward pass on every thread the settings allow: its work comes in chunks of many rows
        times many tokens, claimed from one counter, so a helper that another process delays costs at most the chunk
        it holds. The decode steps that follow use the governor's choice."""
        if hasattr(self.model, "set_threads"):
            self.model.set_threads(self.settings.n_threads)
        return self.model.forward(ids, 0)

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
        self.ensure_ready()
        with self._gen_lock:
            ids = self.tokenizer(prompt)["input_ids"]
            if hasattr(self.model, "use_temperature"):
                self.model.use_temperature(0.0)
            logits = self._prefill(ids)
            self.governor.start()
            out: list[int] = []
            for _ in range(n):
                token = int(np.argmax(logits))
                out.append(token)
                self.governor.tick()
                logits = self.model.forward([token], len(ids) + len(out) - 1)
        return out


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokens that end a generation: the tokenizer's end-of-generation set (GGUF: eos and end-of-turn)."""
    ids = set(getattr(tokenizer, "end_ids", ()))
    if isinstance(tokenizer.eos_token_id, int):
        ids.add(tokenizer.eos_token_id)
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


def _generation_sampler(model: Any) -> Any:
    """/proc/stat samples whose own CPU time is the generating thread's and the native step's helpers': the web
    server's other threads in this process count as load like other processes."""
    from inference.threads import take_sample

    def sample() -> Any:
        return take_sample(own_cpu=model.cpu_seconds, owner=threading.get_native_id())

    return sample


def nan_safe(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


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
