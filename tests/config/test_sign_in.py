"""Issue #12, defect 5 (part): a contributor who is not staff can sign in (the admin's form refuses them)."""

from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def contributor(django_user_model):
    return django_user_model.objects.create_user(username="ada", password="analytical-engine-1843")


def test_a_contributor_signs_in_and_reaches_the_token_page(client, contributor):
    to_tokens = client.get("/benchmarks/tokens/")
    assert to_tokens.status_code == 302 and to_tokens["Location"] == "/accounts/login/?next=/benchmarks/tokens/"
    page = client.get(to_tokens["Location"])
    assert page.status_code == 200 and 'name="password"' in page.content.decode()
    signed_in = client.post(
        "/accounts/login/", {"username": "ada", "password": "analytical-engine-1843", "next": "/benchmarks/tokens/"}
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/benchmarks/tokens/"
    assert client.get("/benchmarks/tokens/").status_code == 200


def test_the_admin_still_refuses_a_contributor(client, contributor):
    response = client.post(
        "/admin/login/", {"username": "ada", "password": "analytical-engine-1843", "next": "/admin/"}
    )
    assert response.status_code == 200  # the form again: not staff


def test_signing_out_is_a_post(client, contributor):
    client.force_login(contributor)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/benchmarks/tokens/").status_code == 302


@override_settings(RIGFIT_LOGIN_RATE=(3, 900))
def test_the_contributor_sign_in_is_throttled(client, contributor):
    codes = [client.post("/accounts/login/", {"username": "ada", "password": "no"}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
