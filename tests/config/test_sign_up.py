"""Issue #12, defect 5 (part): contributors sign up themselves, confirmed by email."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import override_settings

pytestmark = pytest.mark.django_db
PASSWORD = "analytical-engine-1843"


def sign_up(client, username="ada", email="ada@example.org", **extra):
    data = {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/accounts/signup/", data, **extra)


def test_a_sign_up_mails_a_link_and_the_account_works_once_it_is_followed(client):
    response = sign_up(client)
    assert response.status_code == 201 and "ada@example.org" in response.content.decode()
    user = get_user_model().objects.get(username="ada")
    assert not user.is_active
    assert client.post("/accounts/login/", {"username": "ada", "password": PASSWORD}).status_code == 200  # not yet
    [message] = mail.outbox
    assert message.to == ["ada@example.org"]
    link = re.search(r"http://testserver(/accounts/confirm/\S+/)", message.body).group(1)
    confirmed = client.get(link)
    assert confirmed.status_code == 302 and confirmed["Location"].startswith("/accounts/login/")
    assert client.get(link).status_code == 404  # once only
    signed_in = client.post(
        "/accounts/login/", {"username": "ada", "password": PASSWORD, "next": "/benchmarks/tokens/"}
    )
    assert signed_in.status_code == 302
    assert client.get("/benchmarks/tokens/").status_code == 200


def test_a_forged_link_does_nothing(client):
    sign_up(client)
    uid = re.search(r"/accounts/confirm/([^/]+)/", mail.outbox[0].body).group(1)
    assert client.get(f"/accounts/confirm/{uid}/not-a-token/").status_code == 404
    assert client.get("/accounts/confirm/!!!/x/").status_code == 404
    assert not get_user_model().objects.get(username="ada").is_active


def test_the_form_refuses_a_taken_email_and_a_weak_password(client):
    sign_up(client)
    again = sign_up(client, username="ada2", email="ADA@example.org")
    assert again.status_code == 422 and "exists" in again.content.decode()
    weak = client.post(
        "/accounts/signup/", {"username": "bob", "email": "b@example.org", "password1": "123", "password2": "123"}
    )
    assert weak.status_code == 422
    assert get_user_model().objects.count() == 1


@override_settings(RIGFIT_BENCH_RATE_IP=(100, 3600))
def test_sign_ups_are_rate_limited_per_address(client):
    codes = [sign_up(client, username=f"u{i}", email=f"u{i}@example.org").status_code for i in range(6)]
    assert codes == [201] * 5 + [429]
