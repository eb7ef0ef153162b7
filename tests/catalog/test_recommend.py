"""Which quant to pick (issue 10, item 5): fit.recommend's rule, and the pages and API that show it."""

from __future__ import annotations

import re

import pytest

from catalog import fit
from catalog.fit import MemoryBreakdown, QuantChoice, Verdict

MEMORY = MemoryBreakdown(
    weights_bytes=1, kv_cache_bytes=1, compute_bytes=1, overhead_bytes=1, vision_bytes=0, total_bytes=4
)


def _choice(name: str, bits: float, verdict: Verdict, tps: float | None, ppl: float | None = None) -> QuantChoice:
    result = fit.FitResult(
        memory=MEMORY,
        verdict=verdict,
        gpu_layers=32 if verdict == Verdict.FITS_GPU else 10,
        n_layers=32,
        needed_bytes=3,
        usable_bytes=3,
        headroom_bytes=0,
        est_decode_tps=tps,
        est_prefill_tps=None,
    )
    return QuantChoice(name=name, bits_per_weight=bits, perplexity_delta=ppl, result=result)


def test_it_recommends_the_best_quality_that_fits_and_keeps_a_usable_speed():
    # The M4 Max case from the issue: BF16 fits at 5.9 tok/s; it is the best quality, not the recommendation.
    choices = [
        _choice("BF16", 16.0, Verdict.FITS_GPU, 5.9),
        _choice("Q8_0", 8.5, Verdict.FITS_GPU, 11.0),
        _choice("Q4_K_M", 4.89, Verdict.FITS_GPU, 19.5),
        _choice("Q2_K", 2.96, Verdict.FITS_GPU, 27.0),
    ]
    answer = fit.recommend(choices, "unified")
    assert answer.recommended is not None and answer.recommended.name == "Q8_0"
    assert answer.fastest is not None and answer.fastest.name == "Q2_K"
    assert answer.best_quality is not None and answer.best_quality.name == "BF16"
    assert answer.rule == (
        "the highest-quality quantization that fits entirely in memory and decodes at least 10 tok/s at these "
        "settings; when that one has under 4 bits per weight, the highest-quality one that keeps the speed with part "
        "of it in system RAM"
    )


def test_it_prefers_a_run_entirely_in_memory_at_4_bits_or_more_to_a_better_partial_offload():
    # 4 K tokens on an 8 GB card: Q6_K fits at 23.5 tok/s; Q8_0 offloads a few layers and still makes 16.8.
    choices = [
        _choice("F16", 16.0, Verdict.PARTIAL_OFFLOAD, 4.0),
        _choice("Q8_0", 8.5, Verdict.PARTIAL_OFFLOAD, 16.8),
        _choice("Q6_K", 6.56, Verdict.FITS_GPU, 23.5),
        _choice("Q4_K_M", 4.0, Verdict.FITS_GPU, 30.1),
    ]
    answer = fit.recommend(choices, "gpu")
    assert answer.recommended is not None and answer.recommended.name == "Q6_K"
    assert answer.best_quality is not None and answer.best_quality.name == "F16"  # partial offload still runs
    # Exactly 4 bits is not "under 4 bits": Q4_K_M at 4.0 stands when it is the best that fits.
    assert fit.recommend(choices[:1] + choices[3:], "gpu").recommended.name == "Q4_K_M"


def test_it_takes_a_partial_offload_that_keeps_the_speed_over_a_run_below_4_bits():
    # The RTX 4060 at 32 K case from the issue: only Q2_K fits entirely; Q5_K_M offloads a few layers and keeps
    # exactly 10 tok/s (the bar is inclusive), Q6_K misses it by a hair.
    choices = [
        _choice("Q6_K", 6.56, Verdict.PARTIAL_OFFLOAD, 9.99),
        _choice("Q5_K_M", 5.7, Verdict.PARTIAL_OFFLOAD, 10.0),
        _choice("Q4_K_M", 4.89, Verdict.PARTIAL_OFFLOAD, 12.7),
        _choice("Q2_K", 2.96, Verdict.FITS_GPU, 19.6),
    ]
    answer = fit.recommend(choices, "gpu")
    assert answer.recommended is not None and answer.recommended.name == "Q5_K_M"
    assert answer.fastest is not None and answer.fastest.name == "Q2_K"
    assert answer.best_quality is not None and answer.best_quality.name == "Q6_K"
    # With nothing better that keeps the speed, the sub-4-bit run in memory stands.
    assert fit.recommend([choices[0], choices[3]], "gpu").recommended.name == "Q2_K"


def test_it_recommends_nothing_when_no_quant_keeps_the_speed_and_picks_the_fastest_for_lists():
    choices = [
        _choice("Q8_0", 8.5, Verdict.PARTIAL_OFFLOAD, 2.0),
        _choice("Q4_K_M", 4.89, Verdict.PARTIAL_OFFLOAD, 4.5),
        _choice("Q2_K", 2.96, Verdict.DOES_NOT_FIT, None),
    ]
    answer = fit.recommend(choices, "gpu")
    assert answer.recommended is None
    assert answer.pick is not None and answer.pick.name == "Q4_K_M"
    assert answer.best_quality is not None and answer.best_quality.name == "Q8_0"
    assert fit.recommend([], "gpu").pick is None
    # Without any speed estimate, lists fall back to the best quality that runs.
    blind = [_choice("Q8_0", 8.5, Verdict.FITS_GPU, None), _choice("Q4_K_M", 4.89, Verdict.FITS_GPU, None)]
    assert fit.recommend(blind, "gpu").pick.name == "Q8_0"


def test_it_takes_a_cpu_run_as_fitting_on_a_cpu_and_breaks_bit_ties_by_perplexity():
    choices = [
        _choice("F16", 16.0, Verdict.CPU_ONLY, 12.0, ppl=0.002),
        _choice("BF16", 16.0, Verdict.CPU_ONLY, 12.0, ppl=-0.005),
    ]
    assert fit.recommend(choices, "cpu").recommended.name == "BF16"
    assert fit.fits_entirely(Verdict.CPU_ONLY, "cpu") and not fit.fits_entirely(Verdict.CPU_ONLY, "gpu")


def test_it_lets_callers_set_the_speed_bar():
    choices = [_choice("Q8_0", 8.5, Verdict.FITS_GPU, 25.0), _choice("Q4_K_M", 4.89, Verdict.FITS_GPU, 40.0)]
    answer = fit.recommend(choices, "gpu", min_decode_tps=30.0)
    assert answer.recommended is not None and answer.recommended.name == "Q4_K_M"
    assert "at least 30 tok/s" in answer.rule


# --- on the pages ----------------------------------------------------------------------------------------------


def _rows(text: str) -> list[tuple[str, str, float | None]]:
    """(quant, verdict label, tok/s) of each row of the model page's quant table, as rendered."""
    found = []
    row = r'<td><a href="[^"]*">([^<]+)</a></td>.*?<td class="verdict-cell[^"]*">(.*?)</td>'
    for name, cell in re.findall(row, text, re.S):
        label = cell.split(" · ")[0].strip()
        speed = re.search(r"· ([\d.,]+) tok/s", cell)
        found.append((name, label, float(speed.group(1).replace(",", "")) if speed else None))
    return found


@pytest.mark.django_db
def test_it_recommends_on_the_model_page_by_the_rule_it_states(client, catalog):
    text = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060", "ctx": 4096}).text
    rows = _rows(text)
    assert [r[0] for r in rows] == ["F16", "Q8_0", "Q6_K", "Q4_K_M", "Q2_K"]  # best quality first
    # The first row (best quality first) that fits in GPU memory at 10 tok/s or more, read off the page itself
    # (Q6_K here: at 4 bits or more, so no partial offload is preferred to it).
    expected = next(name for name, label, tps in rows if label == "Fits in GPU memory" and tps and tps >= 10)
    assert expected in ("Q6_K", "Q4_K_M")
    assert f'data-recommended="{expected}"' in text
    rule = "The rule: the highest-quality quantization that fits entirely in memory and decodes at least 10 tok/s"
    assert rule in text
    fastest = max((r for r in rows if r[2] is not None), key=lambda r: r[2])[0]
    assert f'data-fastest="{fastest}"' in text
    assert 'data-best-quality="F16"' in text  # F16 offloads partly to system RAM, but runs
    # The chip and the first question say the same.
    assert re.search(rf'<li id="quant-chip">recommended on GeForce RTX 4060: <b>{expected}</b>', text)
    first = re.search(r"<summary>(.*?)</summary><p>(.*?)</p>", text[text.index('id="faq"') :], re.S)
    assert first and first.group(1) == "Which quantization should I pick?"
    assert first.group(2).startswith(f"On GeForce RTX 4060 at a 4,096-token context: {expected} (")


@pytest.mark.django_db
def test_it_shows_the_same_pick_on_the_hardware_compare_home_pages_and_the_api(client, catalog):
    model_page = client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4060"}).text
    expected = re.search(r'data-recommended="([^"]+)"', model_page)
    assert expected
    pick = expected.group(1)
    hardware = client.get("/hardware/geforce-rtx-4060/").text
    row = re.search(r'<tr data-model="llama-3-1-8b">.*?</tr>', hardware, re.S)
    assert row and f'<td>{pick} <small class="muted">recommended</small></td>' in row.group(0)
    compare = client.get("/compare/", {"models": ["gemma-3-270m", "llama-3-1-8b"], "hardware": "geforce-rtx-4060"}).text
    assert f'data-recommended="{pick}"' in compare and "Best quality that runs" in compare
    home = client.get("/", {"hardware": "geforce-rtx-4060"}).text
    assert f'data-pick="{pick}"' in home
    body = client.get("/api/fit", {"model": "llama-3-1-8b", "hardware": "geforce-rtx-4060"}).json()
    assert body["recommendation"]["recommended"] == pick
    fits = {b["model"]: b for b in client.get("/api/fits", {"hardware": "geforce-rtx-4060"}).json()}
    assert fits["llama-3-1-8b"]["quant"] == pick and fits["llama-3-1-8b"]["recommended"] is True
