"""The demo page's model line before the model is loaded (UX review): it read "weights in memory: · running on"."""

from __future__ import annotations

import dataclasses
import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_leaves_out_the_weights_figure_until_the_model_is_loaded(client):
    from inference.conf import load_settings
    from inference.engine import Engine, set_engine
    from tests.factories import make_model

    make_model(name="Gemma 3 270M", slug="gemma-3-270m")
    engine = Engine(dataclasses.replace(load_settings(), model_path=None, model_slug="gemma-3-270m"))
    set_engine(engine)
    try:
        body = client.get(reverse("inference:demo")).content.decode()
    finally:
        set_engine(None)
    assert engine.state == "idle" and engine.status()["weights"] == ""
    line = " ".join(re.search(r'<p class="demo-model">(.*?)</p>', body, re.S).group(1).split())
    assert "weights in memory" not in line
    assert "<strong>Q4_K_M</strong> · running on <strong>" in line  # no empty figure between the two
