from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_model

pytestmark = pytest.mark.django_db


def test_it_prefills_the_form_from_query_parameters(client):
    make_model(slug="gemma-3-270m")
    url = reverse("benchmarks:submit")
    assert url == "/benchmarks/submit/"
    response = client.get(url, {"model_slug": "gemma-3-270m", "quant": "Q4_K_M", "avg_ts": "54.2", "n_gen": "128"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="gemma-3-270m"' in html
    assert 'value="54.2"' in html
