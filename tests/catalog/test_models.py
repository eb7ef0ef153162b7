from __future__ import annotations

import re

import pytest

from catalog.models import Model
from tests.factories import make_model

pytestmark = pytest.mark.django_db


def test_it_puts_models_in_parameter_bands():
    tiny = make_model(n_params=270_000_000)
    big = make_model(n_params=70_000_000_000)
    assert tiny.param_band == "tiny"
    assert big.param_band == "huge"
    assert list(Model.objects.in_param_band("tiny")) == [tiny]


def test_it_searches_by_name_family_and_publisher():
    gemma = make_model(name="Gemma 3 270M", family="gemma", publisher="Google")
    make_model(name="Llama 3.1 8B", family="llama", publisher="Meta")
    assert list(Model.objects.search("goog")) == [gemma]
    assert Model.objects.search("  ").count() == 2


def test_it_formats_parameter_counts_as_people_say_them():
    from catalog.templatetags.rigfit import params

    assert params(268_098_176) == "268M"
    assert params(999_885_952) == "1.0B"
    assert params(8_030_261_248) == "8.0B"


def test_it_signs_perplexity_differences():
    from catalog.templatetags.rigfit import signed

    assert signed(0.1754) == "+0.175"
    assert signed(-0.005) == "-0.005"
    assert signed(0.0) == "0.000"


def test_it_groups_the_fields_under_each_source_once():
    config = "https://huggingface.co/org/model/blob/main/config.json"
    model = make_model(sources={"n_layers": config, "n_params": "computed from the shape", "hidden_size": config})
    computed = "computed from the shape"
    assert model.sources_by_origin() == [(config, ["n_layers", "hidden_size"]), (computed, ["n_params"])]


def test_it_shows_each_source_once_on_the_model_page(client):
    config = "https://huggingface.co/org/model/blob/main/config.json"
    model = make_model(sources={"n_layers": config, "hidden_size": config, "n_heads": config})
    body = client.get(model.get_absolute_url()).content.decode()
    assert body.count(f'href="{config}"') == 1
    # Readable names (catalog.templatetags.rigfit.FIELD_LABELS); PostgreSQL's jsonb keeps keys in its own order, so
    # compare the fields as a set.
    (fields,) = re.findall(r"<dt>([^<]*ayers[^<]*)</dt>", body)
    assert sorted(fields.lower().split(", ")) == ["attention heads", "hidden size", "layers"]
