"""The model page's headline chip (issue 13): it leads with the quant the page recommends, never with the smallest."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def chip(html: str) -> str:
    return re.search(r'<li id="quant-chip"[^>]*>(.*?)</li>', html, re.S).group(1)


def test_it_leads_with_the_usual_quant_before_a_device_is_chosen(client, catalog):
    text = chip(client.get("/models/llama-3-1-8b/").text)
    assert text.startswith("<b>Q4_K_M</b> needs <b>")
    assert "at 4,096 ctx" in text and "Q2_K" not in text


def test_it_leads_with_the_recommended_quant_on_the_chosen_device(client, catalog):
    text = chip(client.get("/models/llama-3-1-8b/", {"hardware": "geforce-rtx-4090"}).text)
    assert text.startswith("recommended on GeForce RTX 4090: <b>")
    assert "Q2_K" not in text


def test_it_leads_with_the_quant_asked_for_before_a_device_is_chosen(client, catalog):
    # A link that names a quant: the chip speaks of that one, as the fit panel does.
    text = chip(client.get("/models/llama-3-1-8b/", {"quant": "Q6_K"}).text)
    assert text.startswith("<b>Q6_K</b> needs <b>")
