"""The simulator's 企业微信 on its own: API shapes and error codes over HTTP, consumer actions, and the
encrypted callbacks they deliver (decrypted here with the simulator's crypto)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from siyu.wechat_sim import crypto, work
from siyu.wechat_sim.server import Simulator

CORP = "wwsimcorp0001"
SECRET = "contact-secret-1"
TOKEN = "worktoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def sim():
    simulator = Simulator(siyu_url="http://siyu.test", seed=3)
    simulator.start()
    simulator.callbacks = []

    def capture(method, url, body, headers):
        query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        cipher = re.search(rb"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body).group(1).decode()
        assert query["msg_signature"] == crypto.signature(TOKEN, query["timestamp"], query["nonce"], cipher)
        message, receive_id = crypto.decrypt(AES_KEY, cipher)
        assert receive_id == CORP
        simulator.callbacks.append((urlsplit(url).path, message.decode()))
        return 200, b"success"

    simulator.transport = capture
    work.corp_register(simulator, CORP, secret=SECRET, token=TOKEN, encoding_aes_key=AES_KEY,
                       staff={"zhangsan": "张三", "lisi": "李四"})
    yield simulator
    simulator.stop()


def call(sim, method, path, token=None, **kwargs):
    url = f"{sim.base_url}/qyapi.weixin.qq.com/cgi-bin/{path}"
    params = kwargs.pop("params", {})
    if token:
        params["access_token"] = token
    return requests.request(method, url, params=params, timeout=5, **kwargs).json()


@pytest.fixture
def token(sim):
    answer = call(sim, "GET", "gettoken", params={"corpid": CORP, "corpsecret": SECRET})
    assert answer["errcode"] == 0
    return answer["access_token"]


def field(xml: str, name: str) -> str:
    match = re.search(rf"<{name}>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</{name}>", xml)
    return match.group(1) if match else ""


def test_contact_way_rotation_and_add_callback(sim, token):
    way = call(sim, "POST", "externalcontact/add_contact_way", token,
               json={"type": 2, "scene": 2, "state": "ch_xiaohongshu", "user": ["zhangsan", "lisi"]})
    assert way["errcode"] == 0 and way["qr_code"].startswith("https://")
    first = work.add_contact(sim, "u1", CORP, way["config_id"])
    second = work.add_contact(sim, "u2", CORP, "ch_xiaohongshu")
    assert {first["userid"], second["userid"]} == {"zhangsan", "lisi"}
    path, xml = sim.callbacks[0]
    assert path == f"/wx/work/{CORP}/callback"
    assert field(xml, "ChangeType") == "add_external_contact"
    assert field(xml, "State") == "ch_xiaohongshu"
    assert field(xml, "WelcomeCode") == first["welcome_code"]
    detail = call(sim, "GET", "externalcontact/get", token, params={"external_userid": first["external_userid"]})
    assert detail["external_contact"]["unionid"].startswith("u")
    assert detail["follow_user"][0]["state"] == "ch_xiaohongshu"
    # the welcome code works once
    body = {"welcome_code": first["welcome_code"], "text": {"content": "欢迎"}}
    assert call(sim, "POST", "externalcontact/send_welcome_msg", token, json=body)["errcode"] == 0
    assert call(sim, "POST", "externalcontact/send_welcome_msg", token, json=body)["errcode"] == 41051


def test_errors_are_wechat_shaped(sim, token):
    assert call(sim, "POST", "externalcontact/add_contact_way", token,
                json={"type": 1, "scene": 2, "user": ["nobody"]})["errcode"] == 60111
    assert call(sim, "POST", "externalcontact/add_contact_way", token,
                json={"type": 1, "scene": 2, "user": ["zhangsan", "lisi"]})["errcode"] == 40097
    assert call(sim, "POST", "externalcontact/update_contact_way", token,
                json={"config_id": "missing"})["errcode"] == 41044
    assert call(sim, "GET", "externalcontact/get", token, params={"external_userid": "wmX"})["errcode"] == 40096
    assert call(sim, "POST", "externalcontact/mark_tag", None, json={})["errcode"] == 41001
    assert call(sim, "POST", "externalcontact/get_groupmsg_task", token, data=b"{not json")["errcode"] == 47001


def test_frequency_limit_answers_45009(sim, token):
    work.work_state(sim).corp(CORP).limits["minute"] = 3
    answers = [call(sim, "GET", "user/list", token, params={"department_id": 1})["errcode"] for _ in range(4)]
    assert answers == [0, 0, 0, 45009]
    # another API has its own allowance
    assert call(sim, "GET", "externalcontact/get_follow_user_list", token)["errcode"] == 0


def test_tags_and_marks(sim, token):
    added = call(sim, "POST", "externalcontact/add_corp_tag", token,
                 json={"group_name": "兴趣", "tag": [{"name": "护肤"}, {"name": "彩妆"}]})
    assert added["errcode"] == 0
    tag_ids = [tag["id"] for tag in added["tag_group"]["tag"]]
    assert call(sim, "POST", "externalcontact/add_corp_tag", token,
                json={"group_name": "兴趣", "tag": [{"name": "护肤"}]})["errcode"] == 40071
    way = call(sim, "POST", "externalcontact/add_contact_way", token, json={"type": 1, "scene": 2, "user": ["lisi"]})
    person = work.add_contact(sim, "u9", CORP, way["config_id"])
    marked = call(sim, "POST", "externalcontact/mark_tag", token,
                  json={"userid": "lisi", "external_userid": person["external_userid"], "add_tag": tag_ids})
    assert marked["errcode"] == 0
    bad = call(sim, "POST", "externalcontact/mark_tag", token,
               json={"userid": "lisi", "external_userid": person["external_userid"], "add_tag": ["etNOPE"]})
    assert bad["errcode"] == 40068
    detail = call(sim, "GET", "externalcontact/get", token, params={"external_userid": person["external_userid"]})
    assert sorted(tag["tag_name"] for tag in detail["follow_user"][0]["tags"]) == ["彩妆", "护肤"]
    listed = call(sim, "POST", "externalcontact/get_corp_tag_list", token, json={})
    assert [group["group_name"] for group in listed["tag_group"]] == ["兴趣"]
    work.corp_tag_add(sim, CORP, group_name="兴趣", names=["香氛"], notify=True)
    assert field(sim.callbacks[-1][1], "Event") == "change_external_tag"
    assert field(sim.callbacks[-1][1], "ChangeType") == "create"


def test_mass_send_needs_confirmation_and_respects_monthly_limit(sim, token):
    way = call(sim, "POST", "externalcontact/add_contact_way", token,
               json={"type": 1, "scene": 2, "user": ["zhangsan"]})
    people = [work.add_contact(sim, f"m{index}", CORP, way["config_id"]) for index in range(2)]
    corp = work.work_state(sim).corp(CORP)
    month = work._month(__import__("time").time())
    corp.received[(people[1]["external_userid"], month)] = work.monthly_limit(__import__("time").time())
    created = call(sim, "POST", "externalcontact/add_msg_template", token, json={
        "chat_type": "single", "external_userid": [p["external_userid"] for p in people] + ["wmStranger"],
        "text": {"content": "双十一预告"}})
    assert created["errcode"] == 0 and created["fail_list"] == ["wmStranger"]
    tasks = call(sim, "POST", "externalcontact/get_groupmsg_task", token, json={"msgid": created["msgid"]})
    assert tasks["task_list"] == [{"userid": "zhangsan", "status": 0, "send_time": 0}]
    assert work.staff_confirm_mass_send(sim, CORP, created["msgid"], "zhangsan") == {1: 1, 2: 0, 3: 1}
    results = call(sim, "POST", "externalcontact/get_groupmsg_send_result", token,
                   json={"msgid": created["msgid"], "userid": "zhangsan"})
    statuses = {row["external_userid"]: row["status"] for row in results["send_list"]}
    assert statuses == {people[0]["external_userid"]: 1, people[1]["external_userid"]: 3}


def test_group_mass_send_goes_to_the_senders_groups_once_a_day(sim, token):
    mine = [work.group_create(sim, CORP, "zhangsan", name) for name in ("福利群", "兴趣群", "荣誉群")]
    theirs = work.group_create(sim, CORP, "lisi", "李四的群")
    missing_sender = call(sim, "POST", "externalcontact/add_msg_template", token, json={
        "chat_type": "group", "text": {"content": "周一福利"}})
    assert missing_sender["errcode"] == 40097
    nobody = call(sim, "POST", "externalcontact/add_msg_template", token, json={
        "chat_type": "group", "sender": "zhangsan", "chat_id_list": [theirs], "text": {"content": "周一福利"}})
    assert nobody["errcode"] == 41048  # another owner's group is not the sender's to post in
    created = call(sim, "POST", "externalcontact/add_msg_template", token, json={
        "chat_type": "group", "sender": "zhangsan", "chat_id_list": mine[:2], "text": {"content": "周一福利"}})
    assert created["errcode"] == 0
    tasks = call(sim, "POST", "externalcontact/get_groupmsg_task", token, json={"msgid": created["msgid"]})
    assert tasks["task_list"] == [{"userid": "zhangsan", "status": 0, "send_time": 0}]
    assert work.staff_confirm_mass_send(sim, CORP, created["msgid"], "zhangsan") == {1: 2, 2: 0, 3: 0}
    results = call(sim, "POST", "externalcontact/get_groupmsg_send_result", token,
                   json={"msgid": created["msgid"], "userid": "zhangsan"})
    assert {row["chat_id"]: row["status"] for row in results["send_list"]} == {mine[0]: 1, mine[1]: 1}
    assert {row["external_userid"] for row in results["send_list"]} == {""}
    # all of the sender's groups: the two that got one today are at the day's limit
    again = call(sim, "POST", "externalcontact/add_msg_template", token, json={
        "chat_type": "group", "sender": "zhangsan", "text": {"content": "周一福利（补发）"}})
    assert work.staff_confirm_mass_send(sim, CORP, again["msgid"], "zhangsan") == {1: 1, 2: 0, 3: 2}


def test_groups_resign_and_transfer(sim, token):
    way = call(sim, "POST", "externalcontact/add_contact_way", token,
               json={"type": 1, "scene": 2, "user": ["zhangsan"]})
    person = work.add_contact(sim, "g1", CORP, way["config_id"])
    chat_id = work.group_create(sim, CORP, "zhangsan", "会员福利群")
    work.join_group(sim, "g1", CORP, chat_id)
    group = call(sim, "POST", "externalcontact/groupchat/get", token, json={"chat_id": chat_id})
    assert {member["type"] for member in group["group_chat"]["member_list"]} == {1, 2}
    assert field(sim.callbacks[-1][1], "UpdateDetail") == "add_member"
    listed = call(sim, "POST", "externalcontact/groupchat/list", token, json={"limit": 10})
    assert listed["group_chat_list"] == [{"chat_id": chat_id, "status": 0}]
    premature = call(sim, "POST", "externalcontact/resigned/transfer_customer", token, json={
        "handover_userid": "zhangsan", "takeover_userid": "lisi", "external_userid": [person["external_userid"]]})
    assert premature["errcode"] == 40098
    work.staff_resign(sim, CORP, "zhangsan")
    assert field(sim.callbacks[-1][1], "ChangeType") == "delete_user"
    moved = call(sim, "POST", "externalcontact/resigned/transfer_customer", token, json={
        "handover_userid": "zhangsan", "takeover_userid": "lisi", "external_userid": [person["external_userid"]]})
    assert moved["customer"] == [{"external_userid": person["external_userid"], "errcode": 0}]
    waiting = call(sim, "POST", "externalcontact/resigned/transfer_result", token,
                   json={"handover_userid": "zhangsan", "takeover_userid": "lisi"})
    assert waiting["customer"][0]["status"] == 2
    assert work.transfers_complete(sim, CORP) == 1
    done = call(sim, "POST", "externalcontact/resigned/transfer_result", token,
                json={"handover_userid": "zhangsan", "takeover_userid": "lisi"})
    assert done["customer"][0]["status"] == 1
    detail = call(sim, "GET", "externalcontact/get", token, params={"external_userid": person["external_userid"]})
    assert [row["userid"] for row in detail["follow_user"]] == ["lisi"]


def test_moments_task_runs_then_finishes(sim, token):
    job = call(sim, "POST", "externalcontact/add_moment_task", token, json={
        "text": {"content": "新品上市"}, "visible_range": {"sender_list": {"user_list": ["zhangsan", "ghost"]}}})
    first = call(sim, "GET", "externalcontact/get_moment_task_result", token, params={"jobid": job["jobid"]})
    assert first["status"] == 2
    second = call(sim, "GET", "externalcontact/get_moment_task_result", token, params={"jobid": job["jobid"]})
    assert second["status"] == 3 and second["result"]["invalid_sender_list"]["user_list"] == ["ghost"]


def test_control_endpoints(sim):
    base = f"{sim.base_url}/_sim/work"
    assert requests.post(f"{base}/staff", json={"corpid": CORP}, timeout=5).status_code == 400
    assert requests.post(f"{base}/staff", json={"corpid": CORP, "userid": "wangwu", "name": "王五"},
                         timeout=5).json() == {"userid": "wangwu", "name": "王五"}
    state = requests.get(f"{base}/state", params={"corpid": CORP}, timeout=5).json()
    assert state["staff"]["wangwu"] == 1


def test_consumer_actions_over_http(sim, token):
    way = call(sim, "POST", "externalcontact/add_contact_way", token, json={"type": 1, "scene": 2, "user": ["lisi"],
                                                                           "state": "store"})
    base = f"{sim.base_url}/_sim/work"
    added = requests.post(f"{base}/add_contact", json={"user": "h9", "corpid": CORP, "config_id": "store"},
                          timeout=5).json()
    assert added["userid"] == "lisi" and added["status"] == 200
    chat = requests.post(f"{base}/groups", json={"corpid": CORP, "owner": "lisi", "name": "群"}, timeout=5).json()
    assert requests.post(f"{base}/join_group", json={"user": "h9", "corpid": CORP, "chat_id": chat["chat_id"]},
                         timeout=5).json() == {"status": 200}
    assert requests.post(f"{base}/delete_contact", json={"user": "h9", "corpid": CORP, "userid": "lisi"},
                         timeout=5).json() == {"status": 200}
    assert [field(xml, "ChangeType") for _path, xml in sim.callbacks] == [
        "add_external_contact", "create", "update", "del_follow_user"]
    assert way["config_id"] in requests.get(f"{base}/state", params={"corpid": CORP}, timeout=5).json()["contact_ways"]
