"""Questions people ask about a model, answered from the catalog and the fit engine (no canned text)."""

from __future__ import annotations

from dataclasses import dataclass

from catalog import fit
from catalog.models import Hardware, Model
from catalog.services import QuantRow, RowRecommendation
from catalog.templatetags.rigfit import gb, tps, verdict_label, vram_bytes


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    answer: str


def _vram(row: QuantRow) -> int:
    """The quant table's "VRAM needed" (only the weights llama.cpp puts on the GPU), so the answer and the table
    give one figure."""
    return vram_bytes(row.gpu)


def _smallest(rows: list[QuantRow]) -> QuantRow | None:
    return min(rows, key=_vram, default=None)


def _largest(rows: list[QuantRow]) -> QuantRow | None:
    return max(rows, key=_vram, default=None)


def _article(n: int) -> str:
    """'a' or 'an' before a number as it is read: an 8,192, an 11,000, an 18-token, but a 4,096 and a 16,384."""
    lead = f"{n:,}".split(",")[0]
    return "an" if lead.startswith("8") or lead in ("11", "18") else "a"


def _lead_row(rows: list[QuantRow], recommendation: RowRecommendation | None) -> QuantRow | None:
    if recommendation is not None and recommendation.recommended is not None:
        return recommendation.recommended
    return next((r for r in rows if r.quant.name == "Q4_K_M"), None)


def _which_quant(
    model: Model, rows: list[QuantRow], recommendation: RowRecommendation | None, hardware: Hardware | None, ctx: str
) -> Answer | None:
    """The first question, answered by the same rule the page's recommendation uses (fit.recommend). `ctx` comes
    with its article ("a 4,096-token context")."""
    question = "Which quantization should I pick?"
    rule = (
        f"the highest-quality quant that fits entirely in memory and decodes at least {fit.MIN_DECODE_TPS:g} tok/s "
        f"(under {fit.MIN_ENTIRE_BITS:g} bits per weight, a better one that keeps the speed partly in system RAM)"
    )
    if recommendation is None or hardware is None:
        if not rows:
            return None
        return Answer(question, f"Choose your hardware above: rigfit recommends {rule} on it, at {ctx}.")
    rec, fastest, best = recommendation.recommended, recommendation.fastest, recommendation.best_quality
    if rec is not None and rec.result is not None:
        text = (
            f"On {hardware.name} at {ctx}: {rec.quant.name} ({verdict_label(rec.result.verdict).lower()}, "
            f"{gb(rec.result.needed_bytes)} needed, about {tps(rec.result.est_decode_tps)} tok/s), {rule}."
        )
    else:
        text = f"On {hardware.name} at {ctx} no quantization keeps {fit.MIN_DECODE_TPS:g} tok/s."
    if fastest is not None and fastest.result is not None and fastest is not rec:
        text += f" Fastest: {fastest.quant.name} ({tps(fastest.result.est_decode_tps)} tok/s)."
    if best is not None and best is not rec:
        text += f" Best quality that runs at all: {best.quant.name}."
    return Answer(question, text)


def model_faq(
    model: Model,
    rows: list[QuantRow],
    options: fit.FitOptions,
    recommendation: RowRecommendation | None = None,
    hardware: Hardware | None = None,
) -> list[Answer]:
    answers: list[Answer] = []
    smallest, largest = _smallest(rows), _largest(rows)
    ctx = f"{options.ctx:,}-token context"
    a = _article(options.ctx)
    first = _which_quant(model, rows, recommendation, hardware, f"{a} {ctx}")
    if first is not None:
        answers.append(first)
    if smallest and largest:
        estimated = " (estimated)" if smallest.size_estimated or largest.size_estimated else ""
        # Lead with the quant the page speaks of (the recommended one on a device, else the usual Q4_K_M), then the
        # range: the smallest quant is rarely the one to run.
        lead = _lead_row(rows, recommendation)
        lead_text = ""
        if lead is not None and lead not in (smallest, largest):
            lead_text = f"{gb(_vram(lead))} with {lead.quant.name}" + (
                " (the recommended quant on your device); "
                if recommendation and lead is recommendation.recommended
                else " (the usual choice); "
            )
        answers.append(
            Answer(
                f"How much VRAM does {model.name} need?",
                f"At {a} {ctx}: {lead_text}from {gb(_vram(smallest))} with {smallest.quant.name}, the smallest "
                f"quantization listed, up to {gb(_vram(largest))} with {largest.quant.name}{estimated}. That "
                f"is the weights on the GPU, KV cache ({gb(smallest.gpu.kv_cache_bytes)} in {options.kv_type}), "
                "compute buffers and runtime overhead, as in the table above; change the context above to see it move.",
            )
        )
    if smallest:
        answers.append(
            Answer(
                f"Can {model.name} run on a CPU?",
                f"Yes, with {gb(smallest.cpu.total_bytes)} of free RAM for {smallest.quant.name} at {a} {ctx}. "
                "Decode speed is bounded by memory bandwidth: roughly bandwidth divided by the bytes read per token, "
                "so dual-channel DDR5 gives a fraction of a GPU's speed.",
            )
        )
    kv_native = rows[0].gpu.kv_cache_bytes if rows else 0
    if rows:
        shape_note = f"{model.n_layers} layers, {model.n_kv_heads} KV heads of {model.head_dim}"
        if model.sliding_window and model.swa_layers:
            shape_note += (
                f"; {len(model.swa_layers)} of its layers use a {model.sliding_window:,}-token sliding window, "
                "so their cache stops growing there"
            )
        if model.kv_lora_rank:
            shape_note += f"; multi-head latent attention stores a {model.kv_lora_rank}-wide latent per token"
        answers.append(
            Answer(
                f"How long a context can {model.name} handle, and what does it cost?",
                f"Its native maximum is {model.context_length:,} tokens. At {a} {ctx} the KV cache takes "
                f"{gb(kv_native)} ({shape_note}).",
            )
        )
    answers.append(
        Answer(
            f"Is {model.name} licensed for commercial use?",
            f"It is published under {model.license}. Read the licence text in {model.source_repo} before shipping it.",
        )
    )
    if model.is_vision:
        answers.append(
            Answer(
                f"What does the vision part of {model.name} add?",
                f"A vision encoder of {model.vision_params or 0:,} parameters, counted in the figures above, and "
                f"{model.image_tokens or 0} tokens per image, which take their place inside the context: at {a} {ctx} "
                f"{max(options.ctx - (model.image_tokens or 0), 0):,} tokens remain for text after one image.",
            )
        )
    if model.is_moe:
        answers.append(
            Answer(
                f"Why is {model.name} fast for its size?",
                f"It is a mixture of experts: {model.n_experts_used} of {model.n_experts} experts run per token, so "
                "each token reads only the active weights; every expert must still be in memory.",
            )
        )
    return answers
