"""The simulator's callback crypto against wechatpy (both directions) and against the example values
published with WeChat's own message-encryption sample code."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from siyu.wechat_sim import crypto

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxb11529c136998cb6"
CORPID = "ww1234567890abcdef"
TOKEN = "pamtest"

# --- published examples -----------------------------------------------------------------------------
# From WeChat's official message-encryption sample code ("WXBizMsgCrypt", downloadable from the 公众平台
# 消息加解密 documentation): the Java sample's WXBizMsgCryptTest (key, AppID, random string "aaaabbbbccccdddd"
# and the expected ciphertexts), as found in public repository Wyl015/wuyiling
# (work-test/src/main/resources/Utils/aes/WXBizMsgCryptTest.java).
JAVA_SAMPLE_PLAIN = "我是中文abcd123"
JAVA_SAMPLE_CIPHER = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
JAVA_SAMPLE_PLAIN2 = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA["
    "gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType>"
    "<Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId>"
    "<Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]>"
    "</Description></Video></xml>")
JAVA_SAMPLE_CIPHER2 = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweIm"
    "X9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+"
    "UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0"
    "nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdf"
    "akjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqm"
    "A7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQ"
    "DajPkdPrEeOwofJb")
# The C# sample's Sample.cs of the same package (企业微信 flavour: token, CorpID, key, msg_signature,
# timestamp, nonce and the encrypted request), as found in public repository 2830499544/VipCard
# (Chain.Wechat/Tencent/Sample.cs).
CS_TOKEN, CS_ID, CS_KEY = "QDG6eK", "wx5823bf96d3bd56c7", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CS_SIGNATURE, CS_TIMESTAMP, CS_NONCE = "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149"
CS_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/s"
    "YYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJ"
    "YuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGU"
    "callcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDY"
    "A5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==")


def test_published_java_sample_ciphertexts():
    for plain, cipher in ((JAVA_SAMPLE_PLAIN, JAVA_SAMPLE_CIPHER), (JAVA_SAMPLE_PLAIN2, JAVA_SAMPLE_CIPHER2)):
        assert crypto.encrypt(KEY, APPID, plain.encode(), random_prefix=b"aaaabbbbccccdddd") == cipher
        assert crypto.decrypt(KEY, cipher) == (plain.encode(), APPID)


def test_published_csharp_sample_signature_and_decryption():
    assert crypto.signature(CS_TOKEN, CS_TIMESTAMP, CS_NONCE, CS_ENCRYPT) == CS_SIGNATURE
    message, receive_id = crypto.decrypt(CS_KEY, CS_ENCRYPT)
    assert receive_id == CS_ID
    assert b"<Content><![CDATA[hello]]></Content>" in message
    # and the SDK reads the same sample identically
    sdk = WeComCrypto(CS_TOKEN, CS_KEY, CS_ID)
    body = f"<xml><ToUserName><![CDATA[{CS_ID}]]></ToUserName><Encrypt><![CDATA[{CS_ENCRYPT}]]></Encrypt></xml>"
    assert sdk.decrypt_message(body, CS_SIGNATURE, CS_TIMESTAMP, CS_NONCE) == message.decode()


# --- against wechatpy, both directions ----------------------------------------------------------------

keys = st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode()[:43])
payloads = st.text(min_size=0, max_size=600)
ids = st.from_regex(r"w[xw][0-9a-f]{16}", fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9]{3,32}", fullmatch=True)
nonces = st.from_regex(r"[0-9]{1,10}", fullmatch=True)
timestamps = st.integers(min_value=1_000_000_000, max_value=4_000_000_000).map(str)


@settings(max_examples=60, deadline=None)
@given(key=keys, receive_id=ids, token=tokens, nonce=nonces, timestamp=timestamps, text=payloads)
def test_simulator_envelope_decrypts_with_wechatpy(key, receive_id, token, nonce, timestamp, text):
    xml = f"<xml><Content><![CDATA[{text.replace(']]>', '')}]]></Content></xml>"
    body, query = crypto.safe_envelope(token, key, receive_id, xml, timestamp, nonce)
    for sdk in (WeChatCrypto(token, key, receive_id), WeComCrypto(token, key, receive_id)):
        assert sdk.decrypt_message(body, query["msg_signature"], timestamp, nonce) == xml
    check_signature(token, query["signature"], timestamp, nonce)  # raises when wrong


@settings(max_examples=60, deadline=None)
@given(key=keys, receive_id=ids, token=tokens, nonce=nonces, timestamp=timestamps, text=payloads)
def test_wechatpy_envelope_decrypts_with_simulator(key, receive_id, token, nonce, timestamp, text):
    xml = f"<xml><Content><![CDATA[{text.replace(']]>', '')}]]></Content></xml>"
    body = WeChatCrypto(token, key, receive_id).encrypt_message(xml, nonce, timestamp)
    envelope = _fields(body)
    assert envelope["MsgSignature"] == crypto.signature(token, timestamp, nonce, envelope["Encrypt"])
    assert crypto.decrypt(key, envelope["Encrypt"]) == (xml.encode(), receive_id)


@settings(max_examples=40, deadline=None)
@given(key=keys, data=st.binary(max_size=300))
def test_roundtrip_any_bytes(key, data):
    cipher = crypto.encrypt(key, CORPID, data)
    assert len(base64.b64decode(cipher)) % 32 == 0
    assert crypto.decrypt(key, cipher) == (data, CORPID)


def test_wechatpy_rejects_wrong_receive_id_and_signature():
    body, query = crypto.safe_envelope(TOKEN, KEY, APPID, "<xml><A>1</A></xml>", "1409304348", "123")
    with pytest.raises(InvalidAppIdException):
        WeChatCrypto(TOKEN, KEY, "wx0000000000000000").decrypt_message(body, query["msg_signature"], "1409304348",
                                                                       "123")
    with pytest.raises(InvalidSignatureException):
        WeChatCrypto(TOKEN, KEY, APPID).decrypt_message(body, query["msg_signature"], "1409304349", "123")


def test_wecom_echostr_verification_with_wechatpy():
    query = crypto.verify_url_query(TOKEN, KEY, CORPID, "4075181314397890557", "1615881596", "846958211")
    sdk = WeComCrypto(TOKEN, KEY, CORPID)
    assert sdk.check_signature(query["msg_signature"], query["timestamp"], query["nonce"],
                               query["echostr"]) == "4075181314397890557"


def test_compatible_mode_keeps_plain_fields_and_adds_encrypt():
    xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><MsgType><![CDATA[text]]></MsgType></xml>"
    body, query = crypto.compat_envelope(TOKEN, KEY, APPID, xml, "1409304348", "99")
    fields = _fields(body)
    assert fields["MsgType"] == "text"
    assert WeChatCrypto(TOKEN, KEY, APPID).decrypt_message(body, query["msg_signature"], "1409304348", "99") == xml


@pytest.mark.parametrize("damage", [
    lambda cipher: cipher[:-8],  # truncated base64
    lambda cipher: base64.b64encode(base64.b64decode(cipher)[:-16]).decode(),  # one block short: bad padding
    lambda cipher: "not base64 at all!",
    lambda cipher: "",
])
def test_damaged_ciphertexts_are_refused(damage):
    cipher = crypto.encrypt(KEY, APPID, b"<xml><A>1</A></xml>" * 3)
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(KEY, damage(cipher))


@pytest.mark.parametrize("bad_key", ["short", KEY + "A", "!" * 43])
def test_bad_encoding_aes_keys_are_refused(bad_key):
    with pytest.raises(crypto.CryptoError):
        crypto.encrypt(bad_key, APPID, b"x")


def _fields(xml: str) -> dict[str, str]:
    import xml.etree.ElementTree as ElementTree  # trusted: produced by the code under test

    return {child.tag: child.text or "" for child in ElementTree.fromstring(xml)}
