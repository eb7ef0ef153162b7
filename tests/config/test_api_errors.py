"""Issue #12, defects 2 and 10: every API error is JSON in one shape, {"message": ...}, 500s included."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_an_api_500_is_json_and_logged(client, catalog, caplog):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("db gone")):
        response = client.get("/api/models")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"message": "Internal server error."}
    assert any(record.levelname == "ERROR" and record.exc_info for record in caplog.records)
