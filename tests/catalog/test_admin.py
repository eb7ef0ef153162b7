"""The catalog admin lists models with their release date and review status."""

from __future__ import annotations

import datetime

import pytest

from tests.factories import make_model

pytestmark = pytest.mark.django_db


def test_it_lists_release_dates_and_filters_by_review_status(admin_client, catalog):
    make_model(name="Dated Admin Test", slug="dated-admin-test", released=datetime.date(2025, 8, 5))
    make_model(name="Imported Admin Test", slug="imported-admin-test", review_status="unreviewed")
    page = admin_client.get("/admin/catalog/model/")
    assert page.status_code == 200
    assert "Aug. 5, 2025" in page.text
    unreviewed = admin_client.get("/admin/catalog/model/", {"review_status__exact": "unreviewed"}).text
    assert "Imported Admin Test" in unreviewed and "Dated Admin Test" not in unreviewed
    by_year = admin_client.get("/admin/catalog/model/", {"released__year": 2025}).text
    assert "Dated Admin Test" in by_year and "Gemma 3 270M" not in by_year
