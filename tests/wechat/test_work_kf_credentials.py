"""微信客服 credentials: kf/sync_msg and kf/send_msg go out with a token fetched with the 微信客服 application's
secret (``kf_secret``, its own cached token ``kf``), falling back to the self-built app's secret when none is
set; the simulator issues WeCom tokens per secret and refuses kf calls made with a secret not allowed to make
them (48002), as WeCom does."""

from __future__ import annotations

import secrets
import time

import pytest
from django.urls import reverse

from siyu.core.errors import SiyuError
from siyu.wechat.clients import WeChatApiError, work_client
from siyu.wechat.credentials import app_save
from siyu.wechat.models import AccessToken
from siyu.wechat.work.kf import kf_sync, kf_text_send
from siyu.wechat_sim import kf as sim_kf
from siyu.wechat_sim.server import SimError, SimRequest
from siyu.wechat_sim.tokens import WORK_HOST

pytestmark = pytest.mark.django_db


def corp_with_kf_secret(wechat_app_factory, *, siyu_knows_kf: bool = True, granted: list[str] | None = None):
    contact, app_secret, kf_secret = (secrets.token_hex(20) for _ in range(3))
    extra = {"secrets": {"contact": contact, "app": app_secret, "kf": kf_secret}}
    if granted is not None:
        extra["kf_api_apps"] = granted
    fields = {"contact_secret": contact, "app_secret": app_secret}
    if siyu_knows_kf:
        fields["kf_secret"] = kf_secret
    return wechat_app_factory("work", extra=extra, **fields), kf_secret


def issued_secrets(sim, appid: str) -> list[str]:
    with sim.lock:
        return sorted(token.secret for token in sim.state.tokens.values() if token.appid == appid)


def test_kf_calls_use_the_kf_secrets_own_token(wechat_sim, wechat_app_factory):
    app, _kf_secret = corp_with_kf_secret(wechat_app_factory)
    open_kfid = sim_kf.account_add(wechat_sim, app.appid, "官方客服")
    sim_kf.customer_says(wechat_sim, app.appid, open_kfid, "wmKf1", "你好，在吗")
    page = kf_sync(app, open_kfid=open_kfid)
    assert [message["text"]["content"] for message in page["msg_list"]] == ["你好，在吗"]
    assert kf_text_send(app, open_kfid=open_kfid, external_userid="wmKf1", text="在的，请讲")
    assert sim_kf.sent_messages(wechat_sim, app.appid)[-1]["text"]["content"] == "在的，请讲"
    assert issued_secrets(wechat_sim, app.appid) == ["kf"]  # one token, fetched with the kf secret, shared
    assert set(AccessToken.objects.filter(app=app).values_list("key", flat=True)) == {"kf"}


def test_without_a_kf_secret_the_self_built_apps_secret_is_the_fallback(wechat_sim, work_app):
    open_kfid = sim_kf.account_add(wechat_sim, work_app.appid)
    sim_kf.customer_says(wechat_sim, work_app.appid, open_kfid, "wmKf2", "发货了吗")
    assert len(kf_sync(work_app, open_kfid=open_kfid)["msg_list"]) == 1
    assert issued_secrets(wechat_sim, work_app.appid) == ["app"]
    assert set(AccessToken.objects.filter(app=work_app).values_list("key", flat=True)) == {"app"}


def test_the_simulator_refuses_kf_calls_with_a_secret_not_granted(wechat_sim, wechat_app_factory):
    # WeCom has the corp's kf secret, Siyu only the self-built app's, which was not granted kf API access
    app, _kf_secret = corp_with_kf_secret(wechat_app_factory, siyu_knows_kf=False)
    open_kfid = sim_kf.account_add(wechat_sim, app.appid)
    with pytest.raises(WeChatApiError) as refused:
        kf_sync(app, open_kfid=open_kfid)
    assert refused.value.errcode == 48002
    # granting the self-built app (「通过 API 管理微信客服账号」) lets its token through
    granted, _ = corp_with_kf_secret(wechat_app_factory, siyu_knows_kf=False, granted=["app"])
    assert kf_sync(granted, open_kfid=sim_kf.account_add(wechat_sim, granted.appid))["msg_list"] == []
    # a 客户联系 token is never a kf token
    contact_token = work_client(app, secret="contact").access_token
    request = SimRequest("POST", WORK_HOST, "/cgi-bin/kf/sync_msg", {"access_token": contact_token}, {},
                         b'{"cursor": ""}')
    with pytest.raises(SimError) as forbidden:
        sim_kf.sync_msg(wechat_sim, request)
    assert forbidden.value.errcode == 48002


def test_a_corps_secrets_have_independent_tokens(wechat_sim, wechat_app_factory):
    app, _kf_secret = corp_with_kf_secret(wechat_app_factory)
    first_app_token = work_client(app, secret="app").access_token
    work_client(app, secret="kf").access_token  # noqa: B018 - fetching it is the point
    work_client(app, secret="contact").access_token  # noqa: B018
    with wechat_sim.lock:
        issued = wechat_sim.state.tokens[first_app_token]
        assert issued.secret == "app" and issued.expires_at > time.time() + 600  # not cut to the grace period
    assert issued_secrets(wechat_sim, app.appid) == ["app", "contact", "kf"]


def test_no_usable_secret_is_a_clear_error(wechat_sim, wechat_app_factory, workspace):
    contact = secrets.token_hex(20)
    app = app_save(workspace=workspace, kind="work", appid="wwkfnone0001", name="只有客户联系",
                   secrets={"contact_secret": contact})
    with pytest.raises(SiyuError) as missing:
        kf_sync(app)
    assert missing.value.code == "wechat_secret_missing" and missing.value.status == 400
    assert missing.value.message_zh and missing.value.message_en


def test_kf_secret_is_validated_and_rotation_drops_its_token(wechat_sim, wechat_app_factory, workspace):
    app, kf_secret = corp_with_kf_secret(wechat_app_factory)
    with pytest.raises(SiyuError) as invalid:
        app_save(workspace=workspace, kind="work", appid=app.appid, name=app.name, secrets={"kf_secret": "bad secret!"})
    assert invalid.value.code == "wechat_credentials_invalid" and invalid.value.details["field"] == "kf_secret"
    assert app.__class__.objects.get(pk=app.pk).secrets()["kf_secret"] == kf_secret  # unchanged
    kf_sync(app)
    assert AccessToken.objects.filter(app=app, key="kf").exists()
    app_save(workspace=workspace, kind="work", appid=app.appid, name=app.name,
             secrets={"kf_secret": secrets.token_hex(20)})
    assert not AccessToken.objects.filter(app=app, key="kf").exists()
    # a corp may hold only the kf secret (it only runs 微信客服)
    only = app_save(workspace=workspace, kind="work", appid="wwkfonly0001", name="仅微信客服",
                    secrets={"kf_secret": secrets.token_hex(20)})
    assert set(only.secrets()) == {"kf_secret"}


def test_the_console_form_has_the_kf_secret_field(clients):
    page = clients["admin"].get(reverse("console:wechat_app_create", kwargs={"kind": "work"}))
    assert page.status_code == 200, page.status_code
    html = page.content.decode()
    assert 'name="kf_secret"' in html and "微信客服 Secret" in html


def test_the_simulator_refuses_an_open_kfid_the_corp_does_not_have(wechat_sim, work_app):
    with pytest.raises(SimError) as unknown:
        sim_kf.customer_says(wechat_sim, work_app.appid, "wkNoSuchAccount", "wmKf3", "在吗")
    assert unknown.value.errcode == 95000
    with pytest.raises(SiyuError) as refused:
        kf_text_send(work_app, open_kfid="wkNoSuchAccount", external_userid="wmKf3", text="在的")
    assert refused.value.details["errcode"] == 95000
