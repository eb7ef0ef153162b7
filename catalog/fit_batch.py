"""Every model x quant of a catalog on one device in one pass: catalog.fit's answers, computed with numpy arrays.

A device's fit table (the hardware page, the "fits on" list) asks fit.fit for every quant of every model: about 7,700
calls at 1,000 models, 0.4 s in Python. The work splits in two:

- what does not depend on the device or the settings (weight bytes and their split, expert bytes, bytes a decode step
  reads, each layer's KV heads, window and recurrent state, the quality order of a model's quants) is read once per
  catalog, through fit.py's and speed.py's own functions (`prepare`);
- the rest (KV cache, compute buffer and overhead at the asked context, placement, verdict, decode and prefill speed,
  the quant a list shows) is arithmetic on those arrays (`fit_all`, `Fits.picks`).

The second part repeats fit.memory_breakdown, fit._place, fit.fit, speed.decode_terms / step_seconds / prefill_tps and
fit.recommend operation for operation, in the same order, so every byte count, verdict and layer count is the same
integer and every speed the same float (numpy's float64 operations round as Python's). tests/catalog/test_fit_batch.py
compares every seed model x quant with fit.fit on several devices and settings.

A copy can drift: `in_step()` is False as soon as the source of a function repeated here changes (MIRRORED names
them, MIRRORED_DIGEST is their digest when the copy was last checked), and callers then use fit.fit, so a figure never
changes silently; the test that checks the digest says what to do.

Pure like fit.py: no Django import.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from catalog import fit
from catalog import speed as speed_engine
from catalog.fit import DeviceSpec, FitOptions, FitResult, MemoryBreakdown, ModelShape, QuantSpec, Verdict
from catalog.speed import SpeedModel

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Verdicts as small integers, in fit's order of preference.
VERDICTS: tuple[Verdict, ...] = (Verdict.FITS_GPU, Verdict.PARTIAL_OFFLOAD, Verdict.CPU_ONLY, Verdict.DOES_NOT_FIT)
FITS_GPU, PARTIAL, CPU_ONLY, NO_FIT = range(4)

# The engine's functions this module repeats (and the ones whose behaviour it assumes, such as _matrix_flops_per_s
# depending on the quant's name only). A change to any of them turns the batch off until it is checked again.
MIRRORED: tuple[Callable[..., object], ...] = (
    fit.clamp_ctx,
    fit.kv_cells,
    fit.swa_cells,
    fit._row_bytes,
    fit.kv_layer_bytes,
    fit.layer_kv_heads,
    fit._kv_bytes_of_kind,
    fit.kv_cache_bytes,
    fit.layer_state_bytes,
    fit.recurrent_state_bytes,
    fit._max_cells,
    fit.compute_bytes,
    fit._iswa_inputs_bytes,
    fit.overhead_bytes,
    fit.context_tokens,
    fit.memory_breakdown,
    fit.MemoryBreakdown,
    fit.moe_layer_indices,
    fit.host_expert_bytes,
    fit._n_cpu_moe_for,
    fit._place,
    fit.FitResult,
    fit.fit,
    fit.fits_entirely,
    fit.recommend,
    fit.QuantChoice.quality_key.fget,  # type: ignore[attr-defined]
    speed_engine._kv_read,
    speed_engine._weights_read,
    speed_engine._host_experts_bytes,
    speed_engine._host_expert_read,
    speed_engine.decode_terms,
    speed_engine._matrix_flops_per_s,
    speed_engine.decode_seconds,
    speed_engine.step_seconds,
    speed_engine.prefill_terms,
    speed_engine.prefill_seconds,
    speed_engine.prefill_tps,
)
MIRRORED_DIGEST = "c1f1ebacadde9fd2"


def _code_digest(functions: Sequence[Callable[..., object]]) -> str:
    """A digest of the functions' code, blind to comments and docstrings."""
    parts = []
    for function in functions:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        parts.append(ast.unparse(tree))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def mirrored_digest() -> str:
    try:
        return _code_digest(MIRRORED)
    except (OSError, TypeError, SyntaxError):  # no source to read (a frozen build): never assume the copy holds
        return "no source"


@functools.cache
def in_step() -> bool:
    """Whether the engine's functions are still the ones this module was checked against. Read on the first table
    built, not at import: parsing the mirrored functions' source takes ~65 ms, which every process start (web
    workers, each management command) paid before."""
    return mirrored_digest() == MIRRORED_DIGEST


@dataclass(frozen=True, slots=True)
class QuantInput:
    """One quant of a model as a pick weighs it: the engine's spec, its effective bits and perplexity increase."""

    spec: QuantSpec
    bits_per_weight: float | None
    perplexity_delta: float | None


@dataclass(frozen=True, slots=True)
class ModelInput:
    shape: ModelShape
    context_length: int
    quants: tuple[QuantInput, ...]


def _pad(x: IntArray | int, n: int) -> IntArray:
    return (x + n - 1) // n * n  # type: ignore[return-value]


@dataclass(eq=False)
class Catalog:
    """What fit_all needs of a catalog, device and settings aside. Rows are one per model x quant, grouped by model
    in the given order and, within a model, in fit.recommend's quality order; `starts` holds each model's first row."""

    n_models: int
    fallback: frozenset[int]  # models fit.fit rejects (an invalid shape): left to the caller's scalar path
    # Per model (index m).
    n_layers: IntArray
    hidden: IntArray
    n_heads: IntArray
    head_dim: IntArray
    vocab: IntArray
    inter: IntArray  # intermediate_size or 4 x hidden, as compute_bytes takes it
    kv_lora: IntArray  # 0 without MLA
    rope: IntArray
    window: IntArray  # sliding window, 0 without
    context_length: IntArray
    full_compute: BoolArray  # compute_bytes sizes its attention on the full cache (_max_cells), else the SWA one
    text_params: IntArray
    share: FloatArray  # speed._active_share
    read_used: list[float]  # k / E of a MoE, 0.0 otherwise (Python floats: powers taken as speed.py takes them)
    host_used: list[float]  # _host_expert_read's k / E (1.0 without experts)
    moe_count: IntArray  # layers with routed experts (fit.moe_layer_indices)
    # Per model and layer (padded to the deepest model).
    moe_layers: IntArray  # fit.moe_layer_indices, in order
    heads: IntArray
    is_swa: BoolArray
    state1: IntArray  # layer_state_bytes for one sequence
    # Per row (index r).
    row_model: IntArray
    row_quant: IntArray  # index into the model's quants
    weights: IntArray
    layers_bytes: IntArray
    host_weights: IntArray  # MemoryBreakdown.host_weights_bytes: the input layer, kept in host memory
    output_copy: IntArray  # MemoryBreakdown.output_copy_bytes: tied embeddings' copy in the output layer
    output_on_gpu: IntArray  # what -ngl puts on the GPU with the output layer (fit._place)
    output_bytes: IntArray  # WeightsSplit.output_bytes
    vision: IntArray
    moe_experts: FloatArray  # speed._moe_experts_bytes: the routed experts a decode step reads a share of
    experts: FloatArray  # fit.expert_bytes
    is_float: BoolArray
    bits: FloatArray  # effective bits, 0.0 where unknown (recommend's `or 0.0`)
    estimated: list[frozenset[str]]
    row_name: IntArray  # index into `names`: prompt processing's rate depends on the quant's name
    names: list[str]
    starts: IntArray  # first row of each model with rows
    grouped: IntArray  # the models `starts` belongs to
    _per_cell: dict[str, tuple[IntArray, FloatArray] | None] = field(default_factory=dict)

    def per_cell(self, kv_type: str) -> tuple[IntArray, FloatArray] | None:
        """(KV bytes per cell of each layer, KV bytes one decode token reads per layer) for a cache type; None when a
        layer's row does not divide into the type's blocks (fit raises there: the caller's scalar path says so)."""
        if kv_type not in self._per_cell:
            self._per_cell[kv_type] = self._cells_of(kv_type)
        return self._per_cell[kv_type]

    def _cells_of(self, kv_type: str) -> tuple[IntArray, FloatArray] | None:
        block_bytes, block = fit.KV_TYPE_BLOCK[kv_type]
        mla = (self.kv_lora > 0)[:, None]
        latent = (self.kv_lora + self.rope)[:, None]
        values = np.where(mla, latent, self.heads * self.head_dim[:, None])
        used = self.heads > 0
        if np.any(used & (values % block != 0)):
            return None
        row = values // block * block_bytes
        memory = np.where(used, np.where(mla, row, 2 * row), 0)
        # speed._kv_read: MLA reads its latent row on every layer; others 2 x heads x head_dim values.
        read = np.where(
            mla,
            (latent * block_bytes) / block,
            (2 * self.heads * self.head_dim[:, None] * block_bytes) / block,
        )
        return memory, read


def prepare(models: Sequence[ModelInput]) -> Catalog:
    """Read what does not depend on the device or the settings, through the engine's own functions."""
    fallback = set()
    for m, model in enumerate(models):
        try:
            fit._check_shape(model.shape)
        except ValueError:
            fallback.add(m)
    shapes = [model.shape for model in models]
    depth = max((s.n_layers for s in shapes), default=1)
    n = len(models)
    heads = np.zeros((n, depth), np.int64)
    is_swa = np.zeros((n, depth), bool)
    state1 = np.zeros((n, depth), np.int64)
    moe_layers = np.zeros((n, depth), np.int64)
    moe_count = np.zeros(n, np.int64)
    per_model: dict[str, list] = {
        k: []
        for k in (
            "full_compute",
            "share",
            "read_used",
            "host_used",
        )
    }
    for m, shape in enumerate(shapes):
        if m in fallback:
            per_model["full_compute"].append(True)
            per_model["share"].append(1.0)
            per_model["read_used"].append(0.0)
            per_model["host_used"].append(1.0)
            continue
        layer_heads = [fit.layer_kv_heads(shape, il) for il in range(shape.n_layers)]
        heads[m, : shape.n_layers] = layer_heads
        is_swa[m, : shape.n_layers] = [
            il in shape.swa_layers and bool(shape.sliding_window) for il in range(shape.n_layers)
        ]
        state1[m, : shape.n_layers] = [fit.layer_state_bytes(shape, il) for il in range(shape.n_layers)]
        with_experts = fit.moe_layer_indices(shape)
        moe_layers[m, : len(with_experts)] = with_experts
        moe_count[m] = len(with_experts)
        kv_layers = [il for il in range(shape.n_layers) if layer_heads[il]] or range(shape.n_layers)
        per_model["full_compute"].append(
            any(il not in shape.swa_layers for il in kv_layers) or not shape.sliding_window
        )
        share = speed_engine._active_share(shape)
        per_model["share"].append(share)
        moe = bool(shape.n_experts and shape.n_experts_used and shape.n_experts_used < shape.n_experts)
        per_model["read_used"].append(shape.n_experts_used / shape.n_experts if moe else 0.0)  # type: ignore[operator]
        per_model["host_used"].append(
            shape.n_experts_used / shape.n_experts if shape.n_experts and shape.n_experts_used else 1.0
        )
    rows: dict[str, list] = {
        k: []
        for k in (
            "row_model",
            "row_quant",
            "weights",
            "layers_bytes",
            "host_weights",
            "output_copy",
            "output_on_gpu",
            "output_bytes",
            "vision",
            "moe_experts",
            "experts",
            "is_float",
            "bits",
            "estimated",
            "row_name",
        )
    }
    names: dict[str, int] = {}
    starts, grouped = [], []
    for m, model in enumerate(models):
        if m in fallback or not model.quants:
            continue
        order = sorted(
            range(len(model.quants)),
            key=lambda i: (_quality_key(model.quants[i]), model.quants[i].spec.name),
        )
        starts.append(len(rows["row_model"]))
        grouped.append(m)
        for i in order:
            quant = model.quants[i]
            split = fit.weights_split(model.shape, quant.spec)
            vision = fit.vision_bytes(model.shape, quant.spec)
            estimated = {"compute_bytes", "overhead_bytes"}
            if not split.exact:
                estimated.add("weights_bytes")
            if vision:
                estimated.add("vision_bytes")
            rows["row_model"].append(m)
            rows["row_quant"].append(i)
            rows["weights"].append(split.total_bytes)
            rows["layers_bytes"].append(split.layers_bytes)
            # fit.memory_breakdown's host_weights_bytes and output_copy_bytes.
            rows["host_weights"].append(split.embed_bytes + split.per_layer_embed_bytes)
            rows["output_copy"].append(split.embed_bytes if model.shape.tied_embeddings else 0)
            rows["output_on_gpu"].append(split.embed_bytes if model.shape.tied_embeddings else split.output_bytes)
            rows["output_bytes"].append(split.output_bytes)
            rows["vision"].append(vision)
            rows["moe_experts"].append(speed_engine._moe_experts_bytes(model.shape, quant.spec))
            rows["experts"].append(fit.expert_bytes(model.shape, quant.spec))
            rows["is_float"].append(speed_engine.is_float_quant(quant.spec))
            rows["bits"].append(quant.bits_per_weight or 0.0)
            rows["estimated"].append(frozenset(estimated))
            rows["row_name"].append(names.setdefault(quant.spec.name, len(names)))

    def ints(values: Sequence[int | None]) -> IntArray:
        return np.array([v or 0 for v in values], np.int64)

    return Catalog(
        n_models=n,
        fallback=frozenset(fallback),
        n_layers=ints([s.n_layers for s in shapes]),
        hidden=ints([s.hidden_size for s in shapes]),
        n_heads=ints([s.n_heads for s in shapes]),
        head_dim=ints([s.head_dim for s in shapes]),
        vocab=ints([s.vocab_size for s in shapes]),
        inter=ints([s.intermediate_size or 4 * s.hidden_size for s in shapes]),
        kv_lora=ints([s.kv_lora_rank for s in shapes]),
        rope=ints([s.qk_rope_head_dim for s in shapes]),
        window=ints([s.sliding_window for s in shapes]),
        context_length=ints([model.context_length for model in models]),
        full_compute=np.array(per_model["full_compute"], bool),
        text_params=ints([fit._text_params(s) for s in shapes]),
        share=np.array(per_model["share"], np.float64),
        read_used=per_model["read_used"],
        host_used=per_model["host_used"],
        heads=heads,
        is_swa=is_swa,
        state1=state1,
        moe_layers=moe_layers,
        moe_count=moe_count,
        row_model=np.array(rows["row_model"], np.int64),
        row_quant=np.array(rows["row_quant"], np.int64),
        weights=np.array(rows["weights"], np.int64),
        layers_bytes=np.array(rows["layers_bytes"], np.int64),
        host_weights=np.array(rows["host_weights"], np.int64),
        output_copy=np.array(rows["output_copy"], np.int64),
        output_on_gpu=np.array(rows["output_on_gpu"], np.int64),
        output_bytes=np.array(rows["output_bytes"], np.int64),
        vision=np.array(rows["vision"], np.int64),
        moe_experts=np.array(rows["moe_experts"], np.float64),
        experts=np.array(rows["experts"], np.float64),
        is_float=np.array(rows["is_float"], bool),
        bits=np.array(rows["bits"], np.float64),
        estimated=rows["estimated"],
        row_name=np.array(rows["row_name"], np.int64),
        names=list(names),
        starts=np.array(starts, np.int64),
        grouped=np.array(grouped, np.int64),
    )


def _quality_key(quant: QuantInput) -> tuple[float, float]:
    """fit.QuantChoice.quality_key of this quant."""
    bits = quant.bits_per_weight if quant.bits_per_weight is not None else 0.0
    delta = quant.perplexity_delta if quant.perplexity_delta is not None else float("inf")
    return (-bits, delta)


@dataclass(eq=False)
class Fits:
    """fit.fit's answer for every row of a Catalog on one device at one setting (arrays indexed by row)."""

    catalog: Catalog
    device: DeviceSpec
    ctx: IntArray  # per model: the context used (clamped to the model's maximum)
    clamped: BoolArray  # per model
    weights: IntArray
    kv: IntArray
    compute: IntArray  # for the whole device (every GPU's buffer)
    overhead: IntArray
    total: IntArray
    verdict: IntArray
    gpu_layers: IntArray
    cpu_moe: IntArray
    needed: IntArray
    usable: IntArray
    headroom: IntArray
    decode: FloatArray  # NaN where fit says None
    prefill: FloatArray

    def result(self, row: int) -> FitResult:
        """The FitResult of one row, as fit.fit builds it."""
        return self.results([row])[0]

    def results(self, rows: Sequence[int]) -> list[FitResult]:
        if not len(rows):
            return []
        c = self.catalog
        index = np.asarray(rows, np.int64)
        models = c.row_model[index]
        columns = zip(
            self.weights[index].tolist(),
            self.kv[index].tolist(),
            self.compute[index].tolist(),
            self.overhead[index].tolist(),
            c.vision[index].tolist(),
            self.total[index].tolist(),
            c.host_weights[index].tolist(),
            c.output_copy[index].tolist(),
            self.verdict[index].tolist(),
            self.gpu_layers[index].tolist(),
            c.n_layers[models].tolist(),
            self.needed[index].tolist(),
            self.usable[index].tolist(),
            self.headroom[index].tolist(),
            self.decode[index].tolist(),
            self.prefill[index].tolist(),
            self.cpu_moe[index].tolist(),
            index.tolist(),
            strict=True,
        )
        return [
            FitResult(
                memory=MemoryBreakdown(
                    weights_bytes=weights,
                    kv_cache_bytes=kv,
                    compute_bytes=compute,
                    overhead_bytes=overhead,
                    vision_bytes=vision,
                    total_bytes=total,
                    estimated=c.estimated[row],
                    host_weights_bytes=host,
                    output_copy_bytes=output_copy,
                ),
                verdict=VERDICTS[verdict],
                gpu_layers=gpu_layers,
                n_layers=n_layers,
                needed_bytes=needed,
                usable_bytes=usable,
                headroom_bytes=headroom,
                est_decode_tps=None if decode != decode else decode,  # NaN stands for None
                est_prefill_tps=None if prefill != prefill else prefill,
                cpu_moe_layers=cpu_moe,
            )
            for (
                weights,
                kv,
                compute,
                overhead,
                vision,
                total,
                host,
                output_copy,
                verdict,
                gpu_layers,
                n_layers,
                needed,
                usable,
                headroom,
                decode,
                prefill,
                cpu_moe,
                row,
            ) in columns
        ]

    def picks(self, *, allow_offload: bool = True) -> tuple[IntArray, BoolArray]:
        """services.pick_quant for every model: (the row picked, -1 for none; whether fit.recommend recommended it).
        fit.recommend's rule on rows already in its quality order: the first that fits entirely and keeps the speed
        (unless under MIN_ENTIRE_BITS: then the first that keeps it), else the fastest that runs, else the best."""
        c = self.catalog
        picked = np.full(c.n_models, -1, np.int64)
        recommended = np.zeros(c.n_models, bool)
        if not len(c.starts):
            return picked, recommended
        entire_verdict = CPU_ONLY if self.device.kind == "cpu" else FITS_GPU
        entirely_here = self.verdict == entire_verdict
        runs = self.verdict != NO_FIT
        if not allow_offload:
            runs &= entirely_here
        has_speed = runs & ~np.isnan(self.decode)
        usable = has_speed & (self.decode >= fit.MIN_DECODE_TPS)
        entirely = usable & entirely_here
        n_rows = len(self.verdict)
        position = np.arange(n_rows)

        def first(mask: BoolArray) -> IntArray:
            found = np.minimum.reduceat(np.where(mask, position, n_rows), c.starts)
            return np.where(found < n_rows, found, -1)

        first_entire = first(entirely)
        first_usable = first(usable)
        low_bits = c.bits[np.maximum(first_entire, 0)] < fit.MIN_ENTIRE_BITS
        chosen = np.where((first_entire < 0) | low_bits, first_usable, first_entire)
        speed = np.where(has_speed, self.decode, -np.inf)
        top = np.maximum.reduceat(speed, c.starts)
        group = np.repeat(np.arange(len(c.starts)), np.diff(np.append(c.starts, n_rows)))
        fastest = first(has_speed & (speed == top[group]))
        best = first(runs)
        pick = np.where(chosen >= 0, chosen, np.where(fastest >= 0, fastest, best))
        picked[c.grouped] = pick
        recommended[c.grouped] = chosen >= 0
        return picked, recommended


def _host_bandwidth(device: DeviceSpec, options: FitOptions) -> float:
    if device.kind == "cpu":
        return device.bandwidth_gbps
    if device.kind == "unified":
        return device.bandwidth_gbps
    return device.system_bandwidth_gbps or options.system_bandwidth_gbps


def fit_all(catalog: Catalog, device: DeviceSpec, options: FitOptions, speed: SpeedModel) -> Fits | None:
    """fit.fit(shape, quant, device, options clamped to the model's context, speed) for every row; None when the
    options hold a KV type some model's rows do not divide into (fit raises there)."""
    fit._check_options(options)
    c = catalog
    kv_tables = c.per_cell(options.kv_type)
    if kv_tables is None:
        return None
    kv_per_cell, kv_read_per_token = kv_tables
    kind = device.kind
    users = options.users
    cpu_overhead = fit.CPU_OVERHEAD_BYTES

    # --- per model: the context and the memory that does not depend on the quant ------------------------------
    ctx = np.where((c.context_length >= 1) & (options.ctx > c.context_length), c.context_length, options.ctx)
    clamped = ctx != options.ctx
    cells = _pad(_pad(ctx * users, 256) // users, 256)
    if options.swa_full:
        swa_cells = cells
    else:
        swa_cells = np.where(c.window > 0, _pad(np.minimum(cells, c.window + options.ubatch), 256), cells)
    layer_cells = np.where(c.is_swa, swa_cells[:, None], cells[:, None])
    kv_layer = kv_per_cell * layer_cells * users
    state_layer = c.state1 * users
    kv_model = kv_layer.sum(axis=1) + state_layer.sum(axis=1)
    compute_cells = np.where(c.full_compute, cells, swa_cells)
    ub = np.minimum(options.ubatch, ctx * users)
    mla = np.where(c.kv_lora > 0, ub * c.n_heads * c.kv_lora * 2 * 4, 0)
    logits = ub * (c.vocab + fit.COMPUTE_LOGITS_EXTRA_HIDDEN * c.hidden) * 4
    if options.flash_attention:
        compute_model = logits + mla
    else:
        attention = (
            ub * compute_cells * (c.n_heads + 1) * 4 + ub * (c.inter + fit.COMPUTE_ATTN_EXTRA_HIDDEN * c.hidden) * 4
        )
        # fit._iswa_inputs_bytes: the sliding cache's own KQ mask (F32) and V row indices (I64) when both kinds of
        # layer keep KV.
        swa_kv = (c.is_swa & (c.heads > 0)).any(axis=1)
        full_kv = ((~c.is_swa) & (c.heads > 0)).any(axis=1)
        iswa = np.where(swa_kv & full_kv, ub * swa_cells * 4 + ub * c.heads.max(axis=1, initial=0) * c.head_dim * 8, 0)
        compute_model = np.maximum(logits, attention + iswa) + mla
    overhead_base = {"gpu": fit.GPU_OVERHEAD_BYTES, "unified": fit.UNIFIED_OVERHEAD_BYTES, "cpu": cpu_overhead}
    if kind not in overhead_base:
        raise ValueError(f"unknown device kind {kind!r}; expected gpu, unified or cpu")
    overhead_model = overhead_base[kind] + c.vocab * 4 * users

    # --- per row: memory and placement (fit._place) ----------------------------------------------------------
    rm = c.row_model
    n_layers = c.n_layers[rm]
    weights = c.weights
    kv = kv_model[rm]
    compute = compute_model[rm]
    overhead = overhead_model[rm]
    vision = c.vision
    total = weights + kv + compute + overhead + vision
    capacity = fit.device_capacity_bytes(device)
    count = device.count if kind == "gpu" else 1
    per_device = compute + overhead
    usable = capacity - overhead * count
    host_weights = c.host_weights if kind == "gpu" else np.zeros_like(weights)
    output_copy = c.output_copy if kind == "gpu" else np.zeros_like(weights)
    needed = total - overhead + compute * (count - 1) - host_weights + output_copy
    headroom = usable - needed
    n_rows = len(weights)
    verdict = np.full(n_rows, NO_FIT, np.int64)
    gpu_layers = np.zeros(n_rows, np.int64)
    cpu_moe = np.zeros(n_rows, np.int64)
    if kind == "cpu":
        verdict = np.where(headroom >= 0, CPU_ONLY, NO_FIT)
    else:
        host_ram = device.memory_bytes if kind == "unified" else options.system_ram_bytes
        whole = (headroom >= 0) & ((host_weights == 0) | (host_weights + cpu_overhead <= host_ram))
        verdict[whole] = FITS_GPU
        gpu_layers[whole] = n_layers[whole]
        rest = ~whole
        if kind == "gpu":
            # --n-cpu-moe N: the routed experts of the fewest MoE layers in host RAM (fit._n_cpu_moe_for).
            moe_count = c.moe_count[rm]
            moe = np.flatnonzero(rest & (headroom < 0) & (moe_count > 0) & (c.experts > 0))
            if len(moe):
                per_layer = c.experts[moe] / moe_count[moe]
                short = needed[moe] - usable[moe]
                moved_layers = np.maximum(-np.floor_divide(-short.astype(np.float64), per_layer).astype(np.int64), 1)
                possible = moved_layers <= moe_count[moe]
                moved_layers = np.where(possible, moved_layers, 1)
                n_cpu_moe = c.moe_layers[rm[moe], moved_layers - 1] + 1
                host_need = per_layer * moved_layers + host_weights[moe] + compute[moe] + cpu_overhead
                ok = possible & (host_need <= host_ram)
                verdict[moe[ok]] = PARTIAL
                gpu_layers[moe[ok]] = n_layers[moe[ok]]
                cpu_moe[moe[ok]] = n_cpu_moe[ok]
                rest[moe[ok]] = False
        # Whole layers from the top while they fit (the loop in fit._place, as running sums: costs are >= 0, so the
        # first sum over the room is where it stops).
        left = np.flatnonzero(rest)
        if len(left):
            layers_left = n_layers[left]
            placed = np.zeros(len(left), np.int64)
            on_gpu = np.zeros(len(left))
            room = capacity - per_device[left] * count - vision[left] - c.output_on_gpu[left]
            for depth in np.unique(layers_left).tolist():  # one matrix per layer count: no padding
                at = np.flatnonzero(layers_left == depth)
                rows = left[at]
                models = rm[rows]
                per_layer_weights = c.layers_bytes[rows] / depth
                # Layer-major (row j: layer depth - 1 - j, top first), so the running sum adds contiguous rows.
                kv_top_first = kv_layer[models, :depth].T[::-1]
                state_top_first = state_layer[models, :depth].T[::-1]
                cost = (per_layer_weights + kv_top_first) + state_top_first
                sums = np.cumsum(cost, axis=0)  # sums[j]: on_gpu + cost when layer depth - 1 - j is tried
                fitted = np.minimum((sums <= room[at]).sum(axis=0), depth - 1)
                placed[at] = fitted
                on_gpu[at] = np.where(fitted > 0, sums[np.maximum(fitted - 1, 0), np.arange(len(at))], 0.0)
            host_need = weights[left] + kv[left] - on_gpu - c.output_bytes[left] + compute[left] + cpu_overhead
            if kind == "unified":
                host_need = host_need + (on_gpu + c.output_on_gpu[left] + per_device[left] + vision[left])
            partial = (placed >= 1) & (host_need <= host_ram)
            cpu_need = total[left] - overhead[left] + cpu_overhead
            verdict[left] = np.where(partial, PARTIAL, np.where(cpu_need <= host_ram, CPU_ONLY, NO_FIT))
            gpu_layers[left] = np.where(partial, placed, 0)
    if kind == "gpu" and device.count > 1:
        extra = device.count - 1
        compute_out = compute * device.count
        overhead_out = overhead * device.count
        total_out = total + (compute + overhead) * extra
    else:
        compute_out, overhead_out, total_out = compute, overhead, total

    # --- speed (speed.step_seconds, speed.prefill_tps) -------------------------------------------------------
    runs = verdict != NO_FIT
    decode = np.full(n_rows, np.nan)
    prefill = np.full(n_rows, np.nan)
    if np.any(runs):
        decode, prefill = _speeds(c, device, options, speed, ctx, verdict, gpu_layers, cpu_moe, kv_read_per_token)
        decode = np.where(runs, decode, np.nan)
        prefill = np.where(runs, prefill, np.nan)
    return Fits(
        catalog=c,
        device=device,
        ctx=ctx,
        clamped=clamped,
        weights=weights,
        kv=kv,
        compute=compute_out,
        overhead=overhead_out,
        total=total_out,
        verdict=verdict,
        gpu_layers=gpu_layers,
        cpu_moe=cpu_moe,
        needed=needed,
        usable=usable,
        headroom=headroom,
        decode=decode,
        prefill=prefill,
    )


def _kv_read(c: Catalog, ctx: IntArray, read_per_token: FloatArray, flash_attention: bool) -> FloatArray:
    """speed._kv_read for every model at its context: the same sum, layer by layer in the same order."""
    per_token = read_per_token
    if not flash_attention:
        grouped = (c.kv_lora == 0)[:, None] & (c.heads > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.maximum(c.n_heads[:, None] / c.heads, 1.0)
        per_token = np.where(grouped, per_token * factor, per_token)
    tokens = np.where(c.is_swa, np.minimum(ctx[:, None], c.window[:, None]), ctx[:, None])
    real = np.arange(c.heads.shape[1])[None, :] < c.n_layers[:, None]
    # total += the read of layer il, then total += 2 x its state, layer after layer for every model at once (one
    # addition at a time, as speed._kv_read adds: numpy's own sum would add in another order).
    read = np.where(real, per_token * tokens, 0.0).T.copy()
    state = (2 * c.state1).T.copy()
    total = np.zeros(c.n_models)
    for layer_read, layer_state in zip(read, state, strict=True):
        total += layer_read
        total += layer_state
    return total


def _weights_read(c: Catalog, batch: int) -> FloatArray:
    """speed._weights_read of every row for a batch of `batch` sequences: the output matrix (or the tied embeddings)
    and the layers whole, less the routed experts the batch does not select."""
    unused = np.array([(1 - used) ** batch for used in c.read_used], np.float64)[c.row_model]  # as speed.py takes it
    output = c.output_on_gpu  # embed_bytes when tied, else output_bytes: the same pick as speed.py's
    experts = c.moe_experts
    dense = c.layers_bytes - experts
    moe = output + dense + experts * (1 - unused)
    return np.where(experts != 0, moe, (c.layers_bytes + output).astype(np.float64))


def _host_experts_bytes(c: Catalog, cpu_moe: IntArray) -> FloatArray:
    """speed._host_experts_bytes of every row: fit.host_expert_bytes (expert bytes / MoE layers, times the MoE layers
    below --n-cpu-moe N), in the bytes speed reads them at (x moe_experts / experts); 0.0 where N is 0."""
    host = np.zeros(len(cpu_moe))
    rows = np.flatnonzero(cpu_moe > 0)
    if len(rows):
        models = c.row_model[rows]
        layers = c.moe_layers[models]
        real = np.arange(layers.shape[1])[None, :] < c.moe_count[models][:, None]
        below = ((layers < cpu_moe[rows][:, None]) & real).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_layer = c.experts[rows] / c.moe_count[models]
            moved = np.where(below > 0, per_layer * below, 0.0)
            host[rows] = np.where(moved != 0, moved * (c.moe_experts[rows] / c.experts[rows]), 0.0)
    return host


def _speeds(
    c: Catalog,
    device: DeviceSpec,
    options: FitOptions,
    speed: SpeedModel,
    ctx: IntArray,
    verdict: IntArray,
    gpu_layers: IntArray,
    cpu_moe: IntArray,
    read_per_token: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """(decode tok/s per user, prefill tok/s) of every row as fit.fit asks speed.py for them (NaN: None)."""
    rm = c.row_model
    kind = device.kind
    users = options.users
    n_rows = len(verdict)
    n_layers = c.n_layers[rm]
    params = speed.params_for(speed_engine.backend_of(device))
    host_params = speed.params_for("cpu")
    rates = [speed_engine._matrix_flops_per_s(device, QuantSpec(name)) for name in c.names]
    rate = np.array([r if r else np.nan for r, _ in rates], np.float64)[c.row_name]
    quantized = np.array([q for _, q in rates], bool)[c.row_name]
    has_rate = ~np.isnan(rate)
    share_model = c.share
    text = c.text_params
    host_pw = np.array([1 - (1 - used) ** users for used in c.host_used], np.float64)[rm]
    host_experts = _host_experts_bytes(c, cpu_moe) if kind == "gpu" else np.zeros(n_rows)
    decode = np.full(n_rows, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if device.bandwidth_gbps > 0:
            kv = users * _kv_read(c, ctx, read_per_token, options.flash_attention)[rm]
            weights = _weights_read(c, users)
            if kind == "cpu":
                gpu_share = np.ones(n_rows)
                host_bw = device.bandwidth_gbps
            else:
                gpu_share = np.where(verdict == FITS_GPU, 1.0, np.where(verdict == PARTIAL, gpu_layers / n_layers, 0.0))
                host_bw = (
                    device.bandwidth_gbps
                    if kind == "unified"
                    else (device.system_bandwidth_gbps or options.system_bandwidth_gbps)
                )
            moe_host = np.zeros(n_rows)
            if kind == "gpu":
                on_host = cpu_moe > 0
                gpu_share = np.where(on_host, 1.0, gpu_share)
                moe_host = np.where(on_host, host_experts * host_pw, 0.0)
            device_bw = device.bandwidth_gbps * 1e9
            alu = device.fp32_tflops * 1e12 if device.fp32_tflops else float("inf")
            is_float = c.is_float
            on_device = weights * gpu_share - moe_host
            clock_scale = 2000.0 / device.clock_mhz if device.clock_mhz and kind != "cpu" else 1.0
            layer_units = n_layers * clock_scale
            extra_gpus = np.where(gpu_share > 0, device.count - 1, 0) if kind == "gpu" else np.zeros(n_rows, np.int64)
            device_quant = np.where(is_float, 0.0, on_device / device_bw)
            device_float = np.where(is_float, on_device, 0.0) / device_bw
            device_kv = kv * gpu_share / device_bw
            quant_alu = np.where(is_float, 0.0, on_device / alu)
            float_alu = (np.where(is_float, on_device, 0.0) + kv * gpu_share) / alu
            host = ((weights + kv) * (1 - gpu_share) + moe_host) / (host_bw * 1e9)
            flops = (2 * text * share_model * users)[rm]
            seconds = (
                params.overhead_s
                + params.per_layer_s * layer_units
                + params.quant_read_factor * device_quant
                + params.float_read_factor * device_float
                + params.kv_read_factor * device_kv
                + params.per_extra_gpu_s * extra_gpus
                + params.quant_alu_factor * quant_alu
                + params.float_alu_factor * float_alu
                + host_params.quant_read_factor * host
            )
            factor = np.where(quantized, params.prefill_quant_flop_factor, params.prefill_flop_factor)
            bound = flops * factor / rate
            seconds = np.where(has_rate & (host == 0), np.maximum(seconds, bound), seconds)
            decode = 1 / seconds

        # speed.prefill_tps at its defaults: a 512-token prompt at depth 0, ubatch 512.
        n_prompt, depth, ubatch = 512, 0, 512
        attention = 4 * c.n_layers * c.n_heads * c.head_dim * n_prompt * (depth + n_prompt / 2)
        flops_prompt = (2 * text * share_model * n_prompt + attention)[rm]
        upload = np.zeros(n_rows)
        if kind == "gpu":
            offloaded = verdict == PARTIAL
            host_bytes = np.where(
                cpu_moe > 0,
                host_experts,
                c.layers_bytes / n_layers * (n_layers - gpu_layers),
            )
            upload = np.where(offloaded, host_bytes * -(-n_prompt // ubatch) / speed_engine.PCIE_BYTES_PER_S, 0.0)
        extra = np.where(verdict == FITS_GPU, device.count - 1, 0) if kind == "gpu" else np.zeros(n_rows, np.int64)
        alu_s = (
            np.where(quantized, flops_prompt / (device.fp32_tflops * 1e12), 0.0)
            if device.fp32_tflops
            else np.zeros(n_rows)
        )
        prompt_factor = np.where(quantized, params.prefill_quant_flop_factor, params.prefill_flop_factor)
        # The weights each ubatch touches, once per ubatch, at the device's bandwidth.
        ubatches = -(-n_prompt // ubatch)
        on_device = (verdict == FITS_GPU) | (kind != "gpu")
        weights_read = np.where(on_device, _weights_read(c, min(n_prompt, ubatch)) * ubatches, 0.0)
        weights_read_s = weights_read / (device.bandwidth_gbps * 1e9) if device.bandwidth_gbps > 0 else np.zeros(n_rows)
        prompt_seconds = (
            n_prompt * (params.prefill_token_s + params.prefill_extra_gpu_token_s * extra)
            + flops_prompt / rate * prompt_factor
            + alu_s * params.prefill_quant_alu_factor
            + upload
            + weights_read_s
        )
        prefill = np.where(has_rate, n_prompt / prompt_seconds, np.nan)
    return decode, prefill
