"""Issue #12, defect 5 (part): sign-in attempts are throttled (the review had 50 wrong admin passwords accepted)."""

from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(username="root", password="right-horse-battery", is_staff=True)


def attempt(client, username: str, password: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra)


@override_settings(RIGFIT_LOGIN_RATE=(10, 900))
def test_fifty_wrong_passwords_are_not_all_tried(client, admin_user):
    codes = [attempt(client, "root", f"wrong-{i}").status_code for i in range(50)]
    assert codes[:10] == [200] * 10  # the form again, with its error
    assert set(codes[10:]) == {429}
    locked = attempt(client, "root", "right-horse-battery")
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0


@override_settings(RIGFIT_LOGIN_RATE=(3, 900))
def test_a_username_is_throttled_from_any_address(client, admin_user):
    for i in range(3):
        assert attempt(client, "root", "wrong", REMOTE_ADDR=f"10.0.0.{i}").status_code == 200
    assert attempt(client, "ROOT ", "wrong", REMOTE_ADDR="10.0.0.99").status_code == 429


@override_settings(RIGFIT_LOGIN_RATE=(3, 900))
def test_signing_in_does_not_count(client, admin_user):
    for _ in range(5):
        assert attempt(client, "root", "right-horse-battery").status_code == 302
        client.logout()
    assert attempt(client, "root", "wrong").status_code == 200
