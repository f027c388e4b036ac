"""Callback verification (siyu.wechat.callbacks): the simulator builds what WeChat would send, Siyu checks
it with wechatpy's crypto; every hostile variant is refused with a clear code and nothing stored."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory
from wechatpy.crypto import WeChatCrypto

from siyu.wechat.callbacks import (
    MAX_BODY,
    CallbackRejected,
    official_callback,
    official_reply,
    official_verify_url,
    parse_xml,
    rejection_response,
    work_callback,
    work_reply,
    work_verify_url,
)
from siyu.wechat.credentials import app_save
from siyu.wechat.models import CallbackNonce
from siyu.wechat_sim import crypto

pytestmark = pytest.mark.django_db
factory = RequestFactory()

SUBSCRIBE = ("<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser1]]></FromUserName>"
             "<CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"
             "<EventKey><![CDATA[qrscene_42]]></EventKey></xml>")
XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       "<xml><ToUserName>&xxe;</ToUserName><MsgType>text</MsgType></xml>")
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
          '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>')


def _post(path: str, query: dict, body: str | bytes):
    return factory.post(f"{path}?{urlencode(query)}", data=body, content_type="text/xml")


def _secrets(app):
    values = app.secrets()
    return values["token"], values.get("encoding_aes_key", "")


def _set_mode(app, mode):
    return app_save(workspace=app.workspace, kind=app.kind, appid=app.appid, name=app.name,
                    secrets={"message_mode": mode})


def _safe_request(app, xml, *, timestamp=None, nonce=None, receive_id=None):
    token, key = _secrets(app)
    body, query = crypto.safe_envelope(token, key, receive_id or app.appid, xml, timestamp, nonce)
    return _post("/wx/official/cb", query, body)


# --- happy paths ---------------------------------------------------------------------------------

def test_official_url_verification(official_app):
    token, _ = _secrets(official_app)
    query = {**crypto.plain_query(token), "echostr": "5837397"}
    assert official_verify_url(official_app, query) == "5837397"
    with pytest.raises(CallbackRejected) as error:
        official_verify_url(official_app, {**query, "signature": "0" * 40})
    assert error.value.code == "wechat_callback_bad_signature"


def test_official_safe_mode_callback_and_encrypted_reply(official_app):
    xml = SUBSCRIBE.format(t=int(time.time()))
    message = official_callback(official_app, _safe_request(official_app, xml, nonce="111"))
    assert message.encrypted and message.event == "subscribe"
    assert message.get("FromUserName") == "oUser1" and message.get("EventKey") == "qrscene_42"
    assert CallbackNonce.objects.filter(app=official_app, nonce="111").count() == 1

    reply = "<xml><ToUserName><![CDATA[oUser1]]></ToUserName><Content><![CDATA[欢迎]]></Content></xml>"
    response = official_reply(official_app, message, reply)
    fields = parse_xml(response.content)
    token, key = _secrets(official_app)
    # what WeChat does with the answer: check MsgSignature, decrypt for our AppID (simulator's own code)
    assert fields["MsgSignature"] == crypto.signature(token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
    assert crypto.decrypt(key, fields["Encrypt"]) == (reply.encode(), official_app.appid)
    assert official_reply(official_app, message).content == b"success"


def test_official_plain_and_compatible_modes(official_app):
    token, key = _secrets(official_app)
    xml = SUBSCRIBE.format(t=int(time.time()))
    plain = _set_mode(official_app, "plain")
    message = official_callback(plain, _post("/cb", crypto.plain_query(token, nonce="201"), xml))
    assert not message.encrypted and message.get("Event") == "subscribe"
    assert official_reply(plain, message, "<xml><A>1</A></xml>").content == b"<xml><A>1</A></xml>"

    compat = _set_mode(official_app, "compat")
    body, query = crypto.compat_envelope(token, key, compat.appid, xml, nonce="202")
    message = official_callback(compat, _post("/cb", query, body))
    assert message.encrypted and message.get("FromUserName") == "oUser1"
    # compatible mode also accepts a plain message
    message = official_callback(compat, _post("/cb", crypto.plain_query(token, nonce="203"), xml))
    assert not message.encrypted


def test_work_url_verification_and_callback(work_app):
    token, key = _secrets(work_app)
    query = crypto.verify_url_query(token, key, work_app.appid, "echo-1234")
    assert work_verify_url(work_app, query) == "echo-1234"
    other = crypto.verify_url_query(token, key, "wwsomeoneelse0001", "echo-1234")
    with pytest.raises(CallbackRejected) as error:
        work_verify_url(work_app, other)
    assert error.value.code == "wechat_callback_wrong_app"

    xml = (f"<xml><ToUserName><![CDATA[{work_app.appid}]]></ToUserName><CreateTime>{int(time.time())}</CreateTime>"
           "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>"
           "<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>"
           "<ExternalUserID><![CDATA[wmABC]]></ExternalUserID><State><![CDATA[ch_xhs]]></State></xml>")
    body, query = crypto.safe_envelope(token, key, work_app.appid, xml, nonce="301")
    query.pop("signature"), query.pop("encrypt_type")  # WeCom sends only msg_signature, timestamp, nonce
    message = work_callback(work_app, _post("/wx/work/cb", query, body))
    assert message.get("ChangeType") == "add_external_contact" and message.get("State") == "ch_xhs"
    assert message.dedupe_key.startswith(work_app.appid)
    assert work_reply(work_app, message).content == b"success"
    encrypted = parse_xml(work_reply(work_app, message, "<xml><A>1</A></xml>").content)
    assert crypto.decrypt(key, encrypted["Encrypt"]) == (b"<xml><A>1</A></xml>", work_app.appid)


def test_nested_fields_are_dicts():
    data = parse_xml("<xml><ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>"
                     "<Item><A>1</A></Item><Item><A>2</A></Item></xml>")
    assert data["ScanCodeInfo"] == {"ScanType": "qrcode", "ScanResult": "1"}
    assert data["Item"] == [{"A": "1"}, {"A": "2"}]


# --- hostile callbacks ---------------------------------------------------------------------------

def _hostile_official(app, case):
    token, key = _secrets(app)
    now = int(time.time())
    xml = SUBSCRIBE.format(t=now)
    if case == "xxe":
        return _post("/cb", crypto.plain_query(token), XXE)
    if case == "billion_laughs":
        return _post("/cb", crypto.plain_query(token), LAUGHS)
    if case == "xxe_inside_ciphertext":
        body, query = crypto.safe_envelope(token, key, app.appid, XXE)
        return _post("/cb", query, body)
    if case == "oversized":
        body, query = crypto.safe_envelope(token, key, app.appid, "<xml><A>" + "x" * MAX_BODY + "</A></xml>")
        return _post("/cb", query, body)
    if case == "wrong_signature":
        body, query = crypto.safe_envelope(token, key, app.appid, xml)
        return _post("/cb", {**query, "signature": crypto.signature("other", query["timestamp"], query["nonce"])},
                     body)
    if case == "wrong_msg_signature":
        body, query = crypto.safe_envelope(token, key, app.appid, xml)
        return _post("/cb", {**query, "msg_signature": "f" * 40}, body)
    if case == "stale_timestamp":
        return _safe_request(app, xml, timestamp=now - 301)
    if case == "future_timestamp":
        return _safe_request(app, xml, timestamp=now + 400)
    if case == "wrong_appid":
        return _safe_request(app, xml, receive_id="wx00000000000000000")
    if case == "truncated_ciphertext":
        body, query = crypto.safe_envelope(token, key, app.appid, xml)
        cipher = parse_xml(body)["Encrypt"]
        short = cipher[: len(cipher) // 2]
        forged = body.replace(cipher, short)
        query["msg_signature"] = crypto.signature(token, query["timestamp"], query["nonce"], short)
        return _post("/cb", query, forged)
    if case == "plain_in_safe_mode":
        return _post("/cb", crypto.plain_query(token), xml)
    if case == "missing_params":
        return _post("/cb", {"timestamp": str(now)}, xml)
    if case == "not_xml":
        return _post("/cb", crypto.plain_query(token), "{\"json\": true}")
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "code", "status"), [
    ("xxe", "wechat_callback_xml_forbidden", 400),
    ("billion_laughs", "wechat_callback_xml_forbidden", 400),
    ("xxe_inside_ciphertext", "wechat_callback_xml_forbidden", 400),
    ("oversized", "wechat_callback_too_large", 413),
    ("wrong_signature", "wechat_callback_bad_signature", 403),
    ("wrong_msg_signature", "wechat_callback_bad_signature", 403),
    ("stale_timestamp", "wechat_callback_stale", 403),
    ("future_timestamp", "wechat_callback_stale", 403),
    ("wrong_appid", "wechat_callback_wrong_app", 403),
    ("truncated_ciphertext", "wechat_callback_bad_ciphertext", 400),
    ("plain_in_safe_mode", "wechat_callback_not_encrypted", 403),
    ("missing_params", "wechat_callback_missing_params", 400),
    ("not_xml", "wechat_callback_bad_xml", 400),
])
def test_hostile_official_callbacks_are_rejected_and_nothing_stored(official_app, case, code, status):
    request = _hostile_official(official_app, case)
    with pytest.raises(CallbackRejected) as error:
        official_callback(official_app, request)
    assert (error.value.code, error.value.status) == (code, status)
    assert error.value.message_zh and error.value.message_en
    assert rejection_response(error.value).status_code == status
    assert not CallbackNonce.objects.exists()


def test_replayed_nonce_is_rejected(official_app):
    xml = SUBSCRIBE.format(t=int(time.time()))
    token, key = _secrets(official_app)
    body, query = crypto.safe_envelope(token, key, official_app.appid, xml, nonce="777")
    official_callback(official_app, _post("/cb", query, body))
    with pytest.raises(CallbackRejected) as error:
        official_callback(official_app, _post("/cb", query, body))  # the exact same request again
    assert error.value.code == "wechat_callback_replayed"
    assert CallbackNonce.objects.filter(app=official_app).count() == 1


def test_hostile_work_callbacks(work_app):
    token, key = _secrets(work_app)
    xml = "<xml><Event>change_external_contact</Event></xml>"
    body, query = crypto.safe_envelope(token, key, "wwnotmine00000001", xml)
    cases = [
        ((body, query), "wechat_callback_wrong_app"),
        ((body, {**query, "timestamp": "123"}), "wechat_callback_stale"),
        ((XXE, query), "wechat_callback_xml_forbidden"),
    ]
    good_body, good_query = crypto.safe_envelope(token, key, work_app.appid, xml)
    cases.append(((good_body, {**good_query, "msg_signature": "0" * 40}), "wechat_callback_bad_signature"))
    for (payload, params), code in cases:
        with pytest.raises(CallbackRejected) as error:
            work_callback(work_app, _post("/cb", params, payload))
        assert error.value.code == code
    assert not CallbackNonce.objects.exists()


def test_declared_oversized_body_refused_before_reading(official_app):
    token, _ = _secrets(official_app)
    request = _post("/cb", crypto.plain_query(token), "<xml/>")
    request.META["CONTENT_LENGTH"] = str(MAX_BODY + 1)
    with pytest.raises(CallbackRejected) as error:
        official_callback(official_app, request)
    assert error.value.code == "wechat_callback_too_large"


def test_encrypted_by_wechatpy_is_accepted(official_app):
    """The SDK's own envelope (what another WeChat-compatible sender would produce) is accepted too."""
    token, key = _secrets(official_app)
    timestamp, nonce = str(int(time.time())), "888"
    body = WeChatCrypto(token, key, official_app.appid).encrypt_message(SUBSCRIBE.format(t=timestamp), nonce,
                                                                        timestamp)
    fields = parse_xml(body)
    query = {"signature": crypto.signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": fields["MsgSignature"]}
    assert official_callback(official_app, _post("/cb", query, body)).event == "subscribe"


def test_old_nonces_are_pruned(official_app):
    from datetime import timedelta

    from django.utils import timezone

    from siyu.wechat.callbacks import nonces_prune

    CallbackNonce.objects.create(app=official_app, nonce="old", timestamp=1)
    CallbackNonce.objects.create(app=official_app, nonce="new", timestamp=2)
    CallbackNonce.objects.filter(nonce="old").update(received_at=timezone.now() - timedelta(minutes=11))
    assert nonces_prune() == 1
    assert list(CallbackNonce.objects.values_list("nonce", flat=True)) == ["new"]
