"""Simulated consumers (``siyu.wechat_sim.consumers``) driving the simulator, without Siyu: what they do,
that a seed fixes it, the control API, codes handed back after a restart, and ``--drive`` as a process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from siyu.wechat_sim import consumers, crypto, mp, pay, work
from siyu.wechat_sim.server import Simulator
from siyu.wechat_sim.state import SimApp
from tests.commerce import store_fixtures

OFFICIAL = "wx00000000000000a1"
MINIAPP = "wx00000000000000b2"
CORP = "ww0000000000c3"
MCHID = "1900000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _siyu_stand_in(sim: Simulator):
    """What Siyu would answer, recorded: login gives a token, every callback "success"."""
    sim.received = []

    def transport(method, url, body, headers):
        sim.received.append((url, body))
        path = urlsplit(url).path
        if path.endswith("/login"):
            return 200, json.dumps({"token": "wxs_test"}).encode()
        if path.endswith("/phone"):
            return 200, b"{}"
        return 200, b"success"

    sim.transport = transport


def _brand(sim: Simulator, *, tickets=("gQticketA", "gQticketB"), menu=True) -> None:
    sim.state.app_register(SimApp("official", OFFICIAL, secret="s3cret", token="tok", encoding_aes_key=AES_KEY,
                                  callback_url=f"/wx/official/{OFFICIAL}/callback",
                                  extra={"message_mode": "safe", "open_platform": "brand"}))
    sim.state.app_register(SimApp("miniapp", MINIAPP, secret="m1n1", extra={"open_platform": "brand"}))
    work.corp_register(sim, CORP, secret="c0rp", token="tok", encoding_aes_key=AES_KEY,
                       staff={"zhou": "小周", "li": "小李"})
    requests.post(f"{sim.base_url}/_sim/codes/restore", timeout=5, json={
        "qrcodes": [{"appid": OFFICIAL, "ticket": ticket, "scene": f"xiaohongshu.{index}", "permanent": True}
                    for index, ticket in enumerate(tickets)],
        "contact_ways": [{"corpid": CORP, "config_id": "cfg-xhs", "state": "siyu_xhs", "users": ["zhou", "li"]}],
    }).raise_for_status()
    if menu:
        mp.mp(sim).menus[OFFICIAL] = {"button": [{"type": "click", "name": "福利", "key": "GIFT"},
                                                 {"name": "更多", "sub_button": [
                                                     {"type": "click", "name": "客服", "key": "SERVICE"},
                                                     {"type": "view", "name": "商城", "url": "https://x.test/"}]}]}


@pytest.fixture
def sim():
    simulator = Simulator(seed=5)
    simulator.start()
    _siyu_stand_in(simulator)
    yield simulator
    driver = consumers.driver_of(simulator)
    if driver is not None:
        driver.stop()
    simulator.stop()


def _decrypt_event(body: bytes) -> str:
    text = body.decode()
    cipher = text[text.index("<Encrypt><![CDATA[") + 18:text.index("]]></Encrypt>")]
    message, _ = crypto.decrypt(AES_KEY, cipher)
    return message.decode()


def test_nothing_to_do_until_siyu_has_set_something_up(sim):
    driver = consumers.Driver(sim, seed=1)
    assert driver.possible() == {}
    assert driver.step() is None and sim.received == []


def test_a_scan_delivers_an_encrypted_subscribe_with_the_codes_scene(sim):
    _brand(sim, tickets=("gQonly",))
    driver = consumers.Driver(sim, seed=1, weights={name: 0 for name in consumers.DEFAULT_WEIGHTS} | {"scan": 1})
    outcome = driver.step()
    assert outcome.action == "scan" and outcome.ok and outcome.target == "xiaohongshu.0"
    url, body = sim.received[-1]
    assert url.startswith(f"{sim.siyu_url}/wx/official/{OFFICIAL}/callback?")
    assert {"msg_signature", "timestamp", "nonce", "openid"} <= dict(parse_qsl(urlsplit(url).query)).keys()
    xml = _decrypt_event(body)
    assert "<Event><![CDATA[subscribe]]></Event>" in xml and "qrscene_xiaohongshu.0" in xml
    user = sim.state.users[outcome.user]
    assert mp.mp(sim).followers[(OFFICIAL, sim.state.openid(user, OFFICIAL))].subscribed
    assert outcome.user in driver.people.following[OFFICIAL]


def test_every_kind_of_action_happens_and_reaches_siyu(sim):
    _brand(sim)
    chat_id = work.group_create(sim, CORP, "zhou", "花漾会员群")
    driver = consumers.Driver(sim, seed=11)
    # a payer the driver plays: an order Siyu created (a prepay) for one of its users
    for _ in range(40):
        driver.step()
    payer = next(key for key in driver.people.all)
    openid = sim.state.openid(sim.state.users[payer], MINIAPP)
    sim.state.app_register(SimApp("pay", MCHID, extra={"api_v3_key": "k" * 32, "merchant_serial_no": "AB12",
                                                        "merchant_public_key": "", "appids": [MINIAPP]}))
    state = pay.pay_state(sim)
    state.orders[(MCHID, "ORDER0001")] = pay.SimOrder(MCHID, MINIAPP, "ORDER0001", "面霜", "/wx/pay/notify", 12900,
                                                      openid, "wx_prepay_1")
    state.prepay["wx_prepay_1"] = (MCHID, "ORDER0001")
    taken = 40
    for _ in range(160):
        driver.step()
        taken += 1
        if state.orders[(MCHID, "ORDER0001")].trade_state == "SUCCESS":
            break
    for _ in range(40):
        driver.step()
    taken += 40
    assert set(driver.counts) >= {"scan", "subscribe", "text", "menu", "miniapp", "add_staff", "join_group", "pay"}
    assert not driver.failures, list(driver.log)
    paths = [urlsplit(url).path for url, _ in sim.received]
    assert f"/wx/official/{OFFICIAL}/callback" in paths
    assert f"/wx/consumer/miniapp/{MINIAPP}/login" in paths
    assert f"/wx/work/{CORP}/callback" in paths and "/wx/pay/notify" in paths
    assert state.orders[(MCHID, "ORDER0001")].trade_state == "SUCCESS"
    corp = work.work_state(sim).corps[CORP]
    assert {relation.userid for relation in corp.relations.values()} == {"zhou", "li"}  # rotation
    assert any(key for key in corp.groups[chat_id].members if key.startswith("wm"))
    summary = driver.summary()
    assert summary["users"] == len(driver.people.all) > 10 and sum(summary["counts"].values()) == taken


def _sequence(seed: int) -> list[tuple[str, str, str]]:
    simulator = Simulator(seed=5)
    simulator.start()
    try:
        _siyu_stand_in(simulator)
        _brand(simulator)
        driver = consumers.Driver(simulator, seed=seed)
        return [(o.action, o.user, o.target) for o in (driver.step() for _ in range(60))]
    finally:
        simulator.stop()


def test_the_same_seed_gives_the_same_crowd():
    first, again, other = _sequence(3), _sequence(3), _sequence(4)
    assert first == again
    assert first != other
    assert len({action for action, _, _ in first}) >= 4


def test_a_refusal_is_recorded_and_the_crowd_goes_on(sim):
    _brand(sim, tickets=("gQexpired",))
    mp.mp(sim).qrcodes["gQexpired"].expires_at = time.time() + 60
    driver = consumers.Driver(sim, seed=2, weights={name: 0 for name in consumers.DEFAULT_WEIGHTS} | {"add_staff": 1})
    for staff in work.work_state(sim).corps[CORP].staff.values():
        staff.status = 5  # everyone left: the code has nobody to add
    assert driver.possible() == {}
    for staff in work.work_state(sim).corps[CORP].staff.values():
        staff.status = 1

    def unreachable(method, url, body, headers):
        return 0, b""  # Siyu is down

    sim.transport = unreachable
    outcome = driver.step()
    assert outcome.action == "add_staff" and not outcome.ok and outcome.status == 0
    assert driver.failures["add_staff"] == 1 and driver.step() is not None


def test_control_api_start_step_stop_and_bad_input(sim):
    _brand(sim)
    base = f"{sim.base_url}/_sim/consumers"
    assert requests.get(base, timeout=5).json()["running"] is False
    stepped = requests.post(f"{base}/step", json={"count": 5, "seed": 9}, timeout=10).json()
    assert len(stepped) == 5 and all(item["action"] for item in stepped)
    for bad in ({"per_minute": 0}, {"per_minute": "fast"}, {"per_minute": 10, "weights": {"dance": 1}},
                {"per_minute": 10, "weights": {"scan": -1}}):
        answer = requests.post(f"{base}/start", json=bad, timeout=5)
        assert answer.status_code == 400 and answer.json()["errcode"] == 40097
    assert requests.post(f"{base}/start", data=b"[1]", timeout=5).status_code == 400
    started = requests.post(f"{base}/start", json={"per_minute": 6000, "seed": 1}, timeout=5).json()
    assert started["running"] is True and started["per_minute"] == 6000
    deadline = time.monotonic() + 10
    while sum(requests.get(base, timeout=5).json()["counts"].values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = requests.post(f"{base}/stop", timeout=10).json()
    assert stopped["running"] is False and sum(stopped["counts"].values()) >= 3
    assert stopped["recent"] and {"action", "user", "target", "status", "ok"} <= set(stopped["recent"][0])


def test_codes_restore_keeps_known_codes_and_refuses_unknown_apps(sim):
    _brand(sim, tickets=("gQone",))
    ticket = mp.mp(sim).qrcodes["gQone"]
    again = requests.post(f"{sim.base_url}/_sim/codes/restore", timeout=5, json={
        "qrcodes": [{"appid": OFFICIAL, "ticket": "gQone", "scene": "other", "permanent": True}],
        "contact_ways": [{"corpid": CORP, "config_id": "cfg-xhs", "state": "x", "users": ["li"]}]}).json()
    assert again == {"qrcodes": 0, "contact_ways": 0, "groups": 0, "menus": 0}
    assert mp.mp(sim).qrcodes["gQone"] is ticket
    assert work.work_state(sim).corps[CORP].contact_ways["cfg-xhs"].users == ["zhou", "li"]
    for bad in ({"qrcodes": [{"appid": "wxunknown0000001", "ticket": "t", "scene": "s"}]},
                {"contact_ways": [{"corpid": CORP, "config_id": "c"}]}, {"qrcodes": "x"},
                {"qrcodes": [{"appid": OFFICIAL, "ticket": "t", "scene": "s", "expires_at": "soon"}]},
                {"groups": [{"corpid": CORP, "chat_id": "wr1"}]}, {"menus": {OFFICIAL: {"button": []}}}):
        assert requests.post(f"{sim.base_url}/_sim/codes/restore", json=bad, timeout=5).status_code == 400
    assert "t" not in mp.mp(sim).qrcodes  # a refused request restores nothing
    restored = requests.post(f"{sim.base_url}/_sim/codes/restore", timeout=5, json={
        "groups": [{"corpid": CORP, "chat_id": "wr-vip", "owner": "zhou", "name": "会员群"}],
        "menus": {OFFICIAL: {"button": [{"type": "click", "name": "客服", "key": "SERVICE"}]}}}).json()
    assert restored == {"qrcodes": 0, "contact_ways": 0, "groups": 1, "menus": 0}  # the menu was there already
    assert work.work_state(sim).corps[CORP].groups["wr-vip"].owner == "zhou"
    # a restored temporary code expires as WeChat's would
    requests.post(f"{sim.base_url}/_sim/codes/restore", timeout=5, json={
        "qrcodes": [{"appid": OFFICIAL, "ticket": "gQold", "scene": "s", "expires_at": time.time() - 1}]})
    assert "gQold" not in [code.ticket for code in consumers.Driver(sim)._qr_tickets()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_drive_option_runs_the_consumers_inside_the_simulator_process():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "siyu.wechat_sim", "--port", str(port), "--drive", "600",
                                "--siyu-url", "http://127.0.0.1:9"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "WeChat simulator on" in process.stdout.readline()
        assert "600 actions a minute" in process.stdout.readline()
        base = f"http://127.0.0.1:{port}/_sim"
        deadline = time.monotonic() + 10
        while True:
            try:
                summary = requests.get(f"{base}/consumers", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert summary["running"] is True and summary["per_minute"] == 600
        assert summary["counts"] == {}  # nothing registered yet: the crowd waits
    finally:
        process.terminate()
        process.wait(timeout=10)
    with pytest.raises(SystemExit):
        from siyu.wechat_sim.__main__ import main
        main(["--drive", "-1"])


# --- shopping against a live Siyu (in-process: the store fixture's simulator delivers through the test client) ---
store, wechat_sim, wechat_app_factory = store_fixtures.store, store_fixtures.wechat_sim, store_fixtures.wechat_app_factory


@pytest.mark.django_db
def test_buy_places_and_pays_an_order_in_siyus_store(store, django_capture_on_commit_callbacks):
    from siyu.commerce.orders.models import Order
    from siyu.customers.models import Identity

    only_buying = {name: 0 for name in consumers.DEFAULT_WEIGHTS} | {"buy": 1}
    driver = consumers.Driver(store.sim, seed=5, weights=only_buying)
    with django_capture_on_commit_callbacks(execute=True):  # the payment's domain event marks the order paid
        outcome = driver.step()
    assert outcome.action == "buy" and outcome.ok, outcome
    order = Order.objects.get(number=outcome.target)
    assert order.payment_status == "paid" and order.paid_fen == order.total_fen > 0
    assert 1 <= order.lines.count() <= 2 and order.source == "miniapp"
    assert f"paid {order.total_fen} fen" == outcome.detail
    # the buyer is the simulated user, known to Siyu by their 小程序 openid
    user = store.sim.state.users[outcome.user]
    openid = store.sim.state.openid(user, store.miniapp.appid)
    assert Identity.objects.get(namespace=store.miniapp.appid, value=openid).customer_id == order.customer_id
    # WeChat Pay's side agrees
    [sim_order] = [row for row in pay.pay_state(store.sim).orders.values() if row.payer_openid == openid]
    assert sim_order.trade_state == "SUCCESS" and sim_order.total == order.total_fen
    assert not driver.failures


@pytest.mark.django_db
def test_buy_in_an_empty_store_browses_and_leaves(store):
    from siyu.commerce.catalog.models import Product
    from siyu.commerce.orders.models import Order

    Product.objects.filter(workspace=store.workspace).update(status="off_shelf")
    driver = consumers.Driver(store.sim, seed=5, weights={name: 0 for name in consumers.DEFAULT_WEIGHTS} | {"buy": 1})
    outcome = driver.step()
    assert outcome.ok and outcome.target == "browse" and outcome.detail == "nothing on sale"
    assert not Order.objects.exists()
