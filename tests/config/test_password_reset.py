"""Contributors reset a forgotten password by email (Django's password reset views, benchmarks.accounts limits)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

pytestmark = pytest.mark.django_db
OLD = "analytical-engine-1843"
NEW = "difference-engine-1822"
RESET = "/accounts/password-reset/"


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user(username="ada", email="ada@example.org", password=OLD)


def ask(client, email, **extra):
    return client.post(RESET, {"email": email}, **extra)


def test_a_contributor_sets_a_new_password_through_the_mailed_link(client, ada):
    assert client.get("/accounts/login/").content.decode().count(f'href="{RESET}"') == 1
    assert client.get(RESET).status_code == 200
    asked = ask(client, "ADA@example.org")
    assert asked.status_code == 302 and asked["Location"] == "/accounts/password-reset/sent/"
    assert client.get(asked["Location"]).status_code == 200
    [message] = mail.outbox
    assert message.to == ["ada@example.org"] and message.subject == "Reset your rigfit password"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body).group(1)

    form_page = client.get(link, follow=True)  # Django moves the token into the session, then shows the form
    assert form_page.status_code == 200 and 'name="new_password1"' in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": NEW, "new_password2": NEW})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    assert "Sign in" in client.get(done["Location"]).content.decode()

    assert client.post("/accounts/login/", {"username": "ada", "password": OLD}).status_code == 200  # refused
    assert client.post("/accounts/login/", {"username": "ada", "password": NEW}).status_code == 302
    client.logout()
    again = client.get(link, follow=True)
    assert "not valid" in again.content.decode() and 'name="new_password1"' not in again.content.decode()


def test_a_weak_new_password_is_refused(client, ada):
    ask(client, "ada@example.org")
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    set_url = client.get(link, follow=True).redirect_chain[-1][0]
    weak = client.post(set_url, {"new_password1": "12345678", "new_password2": "12345678"})
    assert weak.status_code == 200 and "bench-error" in weak.content.decode()
    ada.refresh_from_db()
    assert ada.check_password(OLD)


def test_it_answers_alike_and_mails_nobody_for_an_unknown_or_unconfirmed_address(client, ada, django_user_model):
    django_user_model.objects.create_user(username="bob", email="bob@example.org", password=OLD, is_active=False)
    for email in ("nobody@example.org", "bob@example.org"):
        response = ask(client, email)
        assert response.status_code == 302 and response["Location"] == "/accounts/password-reset/sent/"
    assert mail.outbox == []


def test_a_forged_link_sets_nothing(client, ada):
    ask(client, "ada@example.org")
    uid = re.search(r"/accounts/reset/([^/]+)/", mail.outbox[0].body).group(1)
    page = client.get(f"/accounts/reset/{uid}/not-a-token/", follow=True)
    assert "not valid" in page.content.decode() and 'name="new_password1"' not in page.content.decode()
    assert get_user_model().objects.get(username="ada").check_password(OLD)


def test_reset_mails_are_limited_per_address_asked_for(client, ada):
    # RESET_RATE_EMAIL is 3 an hour: the fourth request for the same mailbox is refused, from any client address.
    statuses = [ask(client, "ada@example.org", REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(4)]
    assert statuses == [302, 302, 302, 429]
    assert len(mail.outbox) == 3


def test_reset_requests_are_limited_per_client_address(client, ada):
    # RESET_RATE_IP is 5 an hour: the sixth request from one address is refused, whatever email it names.
    statuses = [ask(client, f"someone{i}@example.org").status_code for i in range(6)]
    assert statuses == [302] * 5 + [429]
    refused = ask(client, "ada@example.org")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert mail.outbox == []
