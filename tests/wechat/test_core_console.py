"""Console pages for WeChat accounts and API issues: roles, secrets never shown back, bad input refused
with nothing changed, changes audited."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from siyu.core.models import AuditLog
from siyu.wechat.credentials import app_save
from siyu.wechat.models import ApiIssue, WeChatApp

pytestmark = pytest.mark.django_db
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def account(workspace):
    return app_save(workspace=workspace, kind="official", appid="wx1234567890abcdef", name="品牌服务号",
                    secrets={"app_secret": SECRET, "token": "brandtoken", "encoding_aes_key": AES_KEY,
                             "message_mode": "safe"})


def official_form(**overrides):
    form = {"name": "新服务号", "appid": "wxaaaaaaaaaaaaaaaa", "app_secret": SECRET, "token": "tok123",
            "encoding_aes_key": AES_KEY, "message_mode": "safe", "is_active": "on"}
    form.update(overrides)
    return form


def test_list_shows_callback_url_token_and_issues_but_no_secret(clients, account):
    ApiIssue.objects.create(workspace=account.workspace, app=account, api="message.template.send", errcode=45009,
                            errmsg="reach max api daily quota limit", count=3, first_seen_at=timezone.now(),
                            last_seen_at=timezone.now())
    for role, client in clients.items():
        response = client.get(reverse("console:wechat_apps"))
        assert response.status_code == 200, role
        html = response.content.decode()
        assert "品牌服务号" in html and "wx1234567890abcdef" in html
        assert "/wx/official/wx1234567890abcdef/callback" in html
        assert "message.template.send" in html and "45009" in html
        assert SECRET not in html and AES_KEY not in html and "brandtoken" not in html
        assert "已设置" in html
        assert ("编辑" in html) == (role == "admin")


def test_only_admins_open_the_forms(clients, account):
    for role in ("operator", "service", "analyst"):
        client = clients[role]
        assert client.get(reverse("console:wechat_app_create", args=["official"])).status_code == 403
        assert client.get(reverse("console:wechat_app_edit", args=[account.pk])).status_code == 403
        response = client.post(reverse("console:wechat_app_create", args=["official"]), official_form())
        assert response.status_code == 403
        response = client.post(reverse("console:wechat_app_edit", args=[account.pk]),
                               {"name": "hijacked", "app_secret": "f" * 32})
        assert response.status_code == 403
    account.refresh_from_db()
    assert account.name == "品牌服务号" and account.secrets()["app_secret"] == SECRET
    assert WeChatApp.objects.count() == 1
    assert clients["admin"].get(reverse("console:wechat_app_create", args=["work"])).status_code == 200


def test_admin_creates_an_account_audited_without_secrets(clients, workspace):
    response = clients["admin"].post(reverse("console:wechat_app_create", args=["official"]), official_form())
    assert response.status_code == 302
    app = WeChatApp.objects.get(appid="wxaaaaaaaaaaaaaaaa")
    assert app.workspace == workspace and app.secrets()["encoding_aes_key"] == AES_KEY
    assert SECRET.encode() not in bytes(app.secrets_enc)
    log = AuditLog.objects.get(action="wechat_app_create")
    assert log.detail["appid"] == "wxaaaaaaaaaaaaaaaa" and "app_secret" in log.detail["secrets_changed"]
    assert SECRET not in str(log.detail) and AES_KEY not in str(log.detail)


def test_edit_page_never_shows_secrets_and_empty_keeps_them(clients, account):
    url = reverse("console:wechat_app_edit", args=[account.pk])
    html = clients["admin"].get(url).content.decode()
    assert SECRET not in html and AES_KEY not in html and "brandtoken" not in html and "已设置" in html
    response = clients["admin"].post(url, {"name": "改名了", "app_secret": "", "token": "", "encoding_aes_key": "",
                                           "message_mode": "compat", "is_active": "on"})
    assert response.status_code == 302
    account.refresh_from_db()
    secrets = account.secrets()
    assert account.name == "改名了" and secrets["message_mode"] == "compat"
    assert secrets["app_secret"] == SECRET and secrets["encoding_aes_key"] == AES_KEY
    assert AuditLog.objects.filter(action="wechat_app_update").count() == 1


@pytest.mark.parametrize(("form", "field"), [
    (official_form(encoding_aes_key="short"), "encoding_aes_key"),
    (official_form(encoding_aes_key="!" * 43), "encoding_aes_key"),
    (official_form(token="bad token!"), "token"),
    (official_form(appid="not-an-appid"), "appid"),
    (official_form(name=""), "name"),
    (official_form(app_secret=""), "app_secret"),
    (official_form(message_mode="loud"), "message_mode"),
    (official_form(message_mode="safe", encoding_aes_key=""), "encoding_aes_key"),
])
def test_bad_input_is_refused_and_nothing_saved(clients, form, field):
    response = clients["admin"].post(reverse("console:wechat_app_create", args=["official"]), form)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html and f'<code class="mono small">{field}</code>' in html
    assert SECRET not in html  # a refused form does not echo secrets either
    assert not WeChatApp.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="wechat_app").exists()


def test_pay_account_needs_a_real_private_key(clients):
    form = {"name": "商户", "appid": "1900000109", "api_v3_key": "a" * 32, "merchant_serial_no": "ABCDEF0123456789",
            "merchant_private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
            "is_active": "on"}
    response = clients["admin"].post(reverse("console:wechat_app_create", args=["pay"]), form)
    assert response.status_code == 400
    assert '<code class="mono small">merchant_private_key</code>' in response.content.decode()
    assert not WeChatApp.objects.exists()


def test_duplicate_and_foreign_accounts(clients, account, other_workspace):
    response = clients["admin"].post(reverse("console:wechat_app_create", args=["official"]),
                                     official_form(appid=account.appid))
    assert response.status_code == 409
    foreign = app_save(workspace=other_workspace, kind="miniapp", appid="wxbbbbbbbbbbbbbbbb", name="别家",
                       secrets={"app_secret": SECRET})
    assert clients["admin"].get(reverse("console:wechat_app_edit", args=[foreign.pk])).status_code == 404
    assert clients["admin"].get(reverse("console:wechat_app_create", args=["bogus"])).status_code == 404


def test_resolving_issues(clients, account, other_workspace):
    now = timezone.now()
    issue = ApiIssue.objects.create(workspace=account.workspace, app=account, api="menu.create", errcode=45011,
                                    first_seen_at=now, last_seen_at=now)
    url = reverse("console:wechat_issue_resolve")
    for role in ("service", "analyst"):
        assert clients[role].post(url, {"issue_id": issue.pk}).status_code == 403
    issue.refresh_from_db()
    assert issue.resolved_at is None
    assert clients["operator"].post(url, {"issue_id": "999999"}).status_code == 404
    assert clients["operator"].post(url, {"issue_id": issue.pk}).status_code == 302
    issue.refresh_from_db()
    assert issue.resolved_at is not None
    assert AuditLog.objects.filter(action="wechat_issue_resolve").count() == 1
    assert "menu.create" not in clients["admin"].get(reverse("console:wechat_apps")).content.decode()
