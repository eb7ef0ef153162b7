"""The catalog's stored MoE layer list reaches the fit engine (services.shape_of), so --n-cpu-moe counts only the
layers that hold experts (Llama 4 Maverick's odd layers, DeepSeek-V3's layers after the first three dense ones)."""

from __future__ import annotations

import pytest

from catalog import fit, services
from tests.factories import make_model, make_quantization

pytestmark = pytest.mark.django_db


def test_it_passes_the_stored_moe_layers_to_the_engine() -> None:
    model = make_model(n_layers=4, n_experts=8, n_experts_used=2, n_active_params=2_000_000_000, moe_layers=[1, 3])

    assert services.shape_of(model).moe_layers == frozenset({1, 3})


def test_it_keeps_every_layer_moe_when_no_list_is_stored() -> None:
    model = make_model(n_layers=4, n_experts=8, n_experts_used=2, n_active_params=2_000_000_000)

    assert services.shape_of(model).moe_layers is None


def test_it_counts_host_experts_of_the_moe_layers_only() -> None:
    # Four layers, experts only in layers 1 and 3: --n-cpu-moe 2 moves the experts of layer 1 alone (layer 0 is
    # dense), so half the expert bytes go to host RAM, not two quarters of them.
    interleaved = make_model(
        n_layers=4, n_experts=8, n_experts_used=2, n_active_params=2_000_000_000, moe_layers=[1, 3]
    )
    quant = make_quantization(interleaved)
    shape = services.shape_of(interleaved)
    spec = services.quant_spec_of(quant)
    experts = fit.expert_bytes(shape, spec)

    assert fit.host_expert_bytes(shape, spec, 2) == pytest.approx(experts / 2)
    assert fit.host_expert_bytes(shape, spec, 1) == 0.0
