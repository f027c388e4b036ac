"""Issue 3's scripted scenario, end to end over real HTTP in both directions.

A consumer scans the brand's 小红书-channel QR code, follows the 公众号 (and is welcomed by it), opens the H5
store through 网页授权 (OAuth), adds a staff member through a 「联系我」 code, is tagged and welcomed by
WeCom, and ends as ONE customer with FOUR identities (公众号 openid, unionid, WeCom external_userid, the
H5 browser's device id) whose first channel is 小红书.

Why ``live_server`` and not the in-process ``wechat_sim`` fixture: the scenario is "over HTTP", so Siyu runs
as a real HTTP server (pytest-django's ``live_server``) and the simulator is its own HTTP server delivering
callbacks with its default transport (urllib → Siyu's URL), exactly as in the demo. Siyu's outbound calls
go through the simulator-mode transport to the simulator's port, and the consumer's WeChat browser is a
``requests`` session following redirects between the two. Nothing is called in-process except the
brand's one-time set-up (registering accounts and creating the codes, as an admin would in the console),
and the assertions on the database. Transactional database (live_server needs committed data).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from siyu.channels.services import channels_install_defaults
from siyu.core.services import api_key_create
from siyu.customers.models import Customer, CustomerStatus, CustomerTag, Event, Identity
from siyu.customers.tagging import tag_create
from siyu.wechat.official.services import official_settings, qrcode_create, settings_update
from siyu.wechat.work.contact_ways import contact_way_save
from siyu.wechat.work.contacts import staff_sync
from siyu.wechat.work.models import ContactRelation, Staff
from siyu.wechat.work.tag_sync import mirror_group
from siyu.wechat_sim import work as sim_work
from siyu.wechat_sim.oauth import authorize_url_for
from siyu.wechat_sim.server import Simulator
from tests.wechat.work_fixtures import immediate_tasks  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

WELCOME_MP = "欢迎关注花漾美妆！点击菜单领取新人礼"
WELCOME_WECOM = "你好，我是你的专属美容顾问，回复 1 领取小红书专享券"


@pytest.fixture
def wechat_sim(live_server, settings):
    """Overrides the package fixture: the simulator delivers to Siyu's live server over HTTP."""
    sim = Simulator(siyu_url=live_server.url, seed=11)
    settings.SIYU_WECHAT_BASE_URL = sim.start()
    settings.SIYU_PUBLIC_URL = live_server.url
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.0,)
    yield sim
    sim.stop()


@pytest.fixture
def brand(wechat_sim, wechat_app_factory, workspace, immediate_tasks):  # noqa: F811
    """What the brand's admin set up beforehand: 公众号 (safe mode, welcome reply), WeCom corp with staff,
    a permanent QR code for 小红书 and a 「联系我」 code (shown in the 公众号) that tags and welcomes."""
    channels_install_defaults(workspace=workspace)
    official = wechat_app_factory("official", name="花漾美妆", extra={"open_platform": "huayang"})
    wechat_sim.state.apps[official.appid].callback_url = f"/wx/official/{official.appid}/callback"
    row = official_settings(app=official)
    settings_update(app=official, actor=None, account_type=row.account_type, unionid_access=True,
                    welcome_reply=WELCOME_MP, default_reply="")
    corp = wechat_app_factory("work", name="花漾美妆企业微信", extra={"open_platform": "huayang"})
    for userid, name in {"zhou": "导购小周", "chen": "导购小陈"}.items():
        sim_work.staff_add(wechat_sim, corp.appid, userid, name)
    staff_sync(corp)
    staff = {row.userid: row for row in Staff.objects.filter(app=corp)}
    # a tag of the group kept in sync with WeCom's tag library, so WeCom marks it on the contact too
    tag = tag_create(workspace=workspace, group_id=mirror_group(workspace).pk, name="小红书种草")
    qr = qrcode_create(app=official, actor=None, name="小红书笔记 3 月", channel="xiaohongshu", kind="permanent")
    way = contact_way_save(workspace=workspace, app=corp, name="公众号加顾问", channel="official_account",
                           members=[(staff["zhou"].pk, 50), (staff["chen"].pk, 50)], tag_ids=[tag.pk],
                           welcome_text=WELCOME_WECOM)
    return {"official": official, "corp": corp, "qr": qr, "way": way, "tag": tag}


def _sim(sim: Simulator, path: str, payload: dict) -> dict:
    answer = requests.post(f"{sim.base_url}/_sim{path}", json=payload, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_scan_subscribe_oauth_contact_way_ends_as_one_customer_with_four_identities(
        wechat_sim, brand, workspace, live_server):
    official, corp = brand["official"], brand["corp"]
    user = wechat_sim.state.user("xiaomei", nickname="小美")

    # 1. She scans the QR code at the end of a 小红书 note: WeChat delivers subscribe (with the scene,
    #    AES-encrypted) to Siyu, which answers the 公众号 welcome (encrypted; the simulator decrypts it).
    delivery = _sim(wechat_sim, "/mp/scan", {"user": "xiaomei", "ticket": brand["qr"].ticket})
    assert delivery["status"] == 200 and WELCOME_MP in delivery["reply"]
    openid = wechat_sim.state.openid(user, official.appid)
    unionid = wechat_sim.state.unionid(user, official.appid)
    customer = Identity.objects.get(workspace=workspace, kind="openid", namespace=official.appid,
                                    value=openid).customer
    assert customer.first_channel == "xiaohongshu"
    assert set(Event.objects.filter(identity__customer=customer).values_list("type", "channel")) == {
        ("qr_scan", "xiaohongshu"), ("subscribe", "xiaohongshu")}

    # 2. She opens the H5 store from the menu: Siyu sends her browser to WeChat's authorize page, WeChat
    #    back to Siyu's callback with a code; the store's first response gave the browser its device id.
    browser = requests.Session()
    start = browser.get(f"{live_server.url}/wx/consumer/oauth/{official.appid}/start",
                        params={"scope": "snsapi_userinfo", "next": "/shop/"}, allow_redirects=False, timeout=30)
    assert start.status_code == 302 and start.headers["Location"].startswith(wechat_sim.base_url)
    device_id = browser.cookies["siyu_did"]
    authorize = browser.get(authorize_url_for(wechat_sim, user="xiaomei", url=start.headers["Location"]),
                            allow_redirects=False, timeout=30)
    assert authorize.status_code == 302 and authorize.headers["Location"].startswith(live_server.url)
    landing = browser.get(authorize.headers["Location"], allow_redirects=False, timeout=30)
    assert landing.status_code == 302 and urlsplit(landing.headers["Location"]).path == "/shop/"
    me = browser.get(f"{live_server.url}/wx/consumer/session", timeout=30).json()
    assert me["kind"] == "h5" and me["customer"]["id"] == customer.pk

    # 3. The 公众号 shows the 「联系我」 code; she adds the member WeCom's rotation picks. WeCom reports
    #    add_external_contact (encrypted) with the code's state and a WelcomeCode.
    added = _sim(wechat_sim, "/work/add_contact", {"user": "xiaomei", "corpid": corp.appid,
                                                    "config_id": brand["way"].config_id})
    assert added["status"] == 200 and added["userid"] in {"zhou", "chen"}

    # ONE customer, FOUR identities, first channel 小红书.
    assert Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE).count() == 1
    customer.refresh_from_db()
    assert set(customer.identities.values_list("kind", "namespace", "value")) == {
        ("openid", official.appid, openid), ("unionid", "", unionid),
        ("external_userid", corp.appid, added["external_userid"]), ("device", "h5", device_id)}
    assert customer.first_channel == "xiaohongshu"
    assert set(Event.objects.filter(identity__customer=customer).values_list("type", flat=True)) == {
        "qr_scan", "subscribe", "wechat_oauth", "wecom_add"}
    assert Event.objects.get(identity__customer=customer, type="wecom_add").channel == "official_account"
    assert customer.name == "小美"  # snsapi_userinfo asked for her name

    # Tagged (by the code, in Siyu and pushed to WeCom) and welcomed (WeCom's welcome message, once).
    assert CustomerTag.objects.filter(customer=customer, tag=brand["tag"]).exists()
    relation = ContactRelation.objects.get(external_userid=added["external_userid"])
    assert relation.customer_id == customer.pk and relation.staff.userid == added["userid"]
    assert relation.welcomed_at is not None
    state = requests.get(f"{wechat_sim.base_url}/_sim/work/state", params={"corpid": corp.appid}, timeout=30).json()
    assert [(w["userid"], w["external_userid"], w["text"]) for w in state["welcomes"]] == [
        (added["userid"], added["external_userid"], WELCOME_WECOM)]
    pushed = next(r for r in state["relations"] if r["external_userid"] == added["external_userid"])
    corp_tags = sim_work.work_state(wechat_sim).corp(corp.appid).tags.values()  # WeCom's tag library
    assert pushed["active"] and pushed["tags"] == [tag.id for tag in corp_tags if tag.name == "小红书种草"]

    # Later she browses the store logged out on the same phone: the anonymous page view is hers.
    _, secret = api_key_create(workspace=workspace, name="h5 store")
    answer = requests.post(f"{live_server.url}/api/v1/events/batch", timeout=30,
                           headers={"Authorization": f"Bearer {secret}"}, json={"events": [{
                               "event_id": "h5-view-1", "type": "page_view", "occurred_at": "2026-11-23T10:00:00Z",
                               "identities": [{"kind": "device", "namespace": "h5", "value": device_id}],
                               "properties": {"url": "/shop/items/7"}}]})
    assert answer.status_code == 200, answer.text
    assert Event.objects.get(event_id="h5-view-1").identity.customer_id == customer.pk
    assert Customer.objects.filter(workspace=workspace).count() == 1


def test_a_forged_device_cookie_is_ignored(wechat_sim, brand, workspace, live_server):
    official = brand["official"]
    browser = requests.Session()
    browser.cookies.set("siyu_did", "<script>x</script>")
    start = browser.get(f"{live_server.url}/wx/consumer/oauth/{official.appid}/start", allow_redirects=False,
                        timeout=30)
    minted = start.cookies.get("siyu_did")
    assert minted and minted.startswith("d_")  # an invalid id is replaced by a fresh one
    authorize = requests.get(authorize_url_for(wechat_sim, user="bob", url=start.headers["Location"]),
                             allow_redirects=False, timeout=30)
    # the callback never trusts a device id it cannot parse: nothing but the openid is stored
    cookies = {cookie.name: cookie.value for cookie in browser.cookies} | {"siyu_did": "d_<bad>"}
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    landing = requests.get(authorize.headers["Location"], headers={"Cookie": header}, allow_redirects=False,
                           timeout=30)
    assert landing.status_code == 302 and "siyu_h5" in landing.cookies
    assert set(Identity.objects.filter(workspace=workspace).values_list("kind", flat=True)) == {"openid"}
