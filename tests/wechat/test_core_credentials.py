"""Registering WeChat accounts: validation per kind, encryption at rest, look-up by (kind, appid)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from siyu.core.errors import SiyuError
from siyu.wechat.credentials import app_for, app_save
from siyu.wechat.models import WeChatApp

pytestmark = pytest.mark.django_db
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SECRET = "0123456789abcdef0123456789abcdef"


def _pem() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode())


def test_each_kind_saves_with_valid_secrets(workspace):
    private, public = _pem()
    cases = [
        ("official", "wx1111111111111111", {"app_secret": SECRET, "token": "tok", "message_mode": "plain"}),
        ("miniapp", "wx2222222222222222", {"app_secret": SECRET}),
        ("work", "ww3333333333333333", {"contact_secret": "c" * 43, "token": "tok", "encoding_aes_key": AES_KEY,
                                        "agent_id": "1000002"}),
        ("pay", "1900000109", {"api_v3_key": "k" * 32, "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A72",
                               "merchant_private_key": private, "platform_public_key": public,
                               "platform_public_key_id": "PUB_KEY_ID_0114232134912410000000000000",
                               "appid": "wx2222222222222222"}),
    ]
    for kind, appid, secrets in cases:
        app = app_save(workspace=workspace, kind=kind, appid=appid, name=kind, secrets=secrets)
        assert app_for(kind=kind, appid=appid).secrets() == {**secrets, **(
            {"message_mode": "plain"} if kind == "official" else {})}
        stored = bytes(WeChatApp.objects.get(pk=app.pk).secrets_enc)
        assert all(str(value).encode() not in stored for value in secrets.values())


@pytest.mark.parametrize(("kind", "secrets", "field"), [
    ("official", {"app_secret": SECRET, "token": "tok", "encoding_aes_key": AES_KEY[:42]}, "encoding_aes_key"),
    ("official", {"app_secret": SECRET, "token": "tok", "encoding_aes_key": AES_KEY[:42] + "="},
     "encoding_aes_key"),
    ("official", {"app_secret": SECRET, "token": "tok", "unknown": "x"}, "unknown"),
    ("work", {"token": "tok", "encoding_aes_key": AES_KEY}, "contact_secret"),
    ("work", {"contact_secret": "c" * 43, "token": "tok"}, "token"),
    ("work", {"contact_secret": "c" * 43, "agent_id": "abc"}, "agent_id"),
    ("pay", {"api_v3_key": "short", "merchant_serial_no": "ABCDEF01", "merchant_private_key": "x"}, "api_v3_key"),
    ("pay", {"api_v3_key": "k" * 32, "merchant_serial_no": "ABCDEF01", "merchant_private_key": "x"},
     "merchant_private_key"),
])
def test_invalid_secrets_refused(workspace, kind, secrets, field):
    appid = {"official": "wx1111111111111111", "work": "ww3333333333333333", "pay": "1900000109"}[kind]
    with pytest.raises(SiyuError) as error:
        app_save(workspace=workspace, kind=kind, appid=appid, name="x", secrets=secrets)
    assert error.value.code == "wechat_credentials_invalid" and error.value.details["field"] == field
    assert not WeChatApp.objects.exists()


def test_pay_public_key_must_parse(workspace):
    private, _ = _pem()
    with pytest.raises(SiyuError) as error:
        app_save(workspace=workspace, kind="pay", appid="1900000109", name="x",
                 secrets={"api_v3_key": "k" * 32, "merchant_serial_no": "ABCDEF01", "merchant_private_key": private,
                          "platform_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"})
    assert error.value.details["field"] == "platform_public_key"


def test_app_for_unknown_or_disabled(workspace):
    with pytest.raises(SiyuError) as error:
        app_for(kind="official", appid="wx0000000000000000")
    assert (error.value.code, error.value.status) == ("wechat_app_unknown", 404)
    app_save(workspace=workspace, kind="miniapp", appid="wx2222222222222222", name="m",
             secrets={"app_secret": SECRET}, is_active=False)
    with pytest.raises(SiyuError):
        app_for(kind="miniapp", appid="wx2222222222222222")
    with pytest.raises(SiyuError):
        app_for(kind="official", appid="wx2222222222222222")  # same id, other kind


def test_an_account_belongs_to_one_workspace(workspace, other_workspace):
    app_save(workspace=workspace, kind="miniapp", appid="wx2222222222222222", name="m", secrets={"app_secret": SECRET})
    with pytest.raises(SiyuError) as error:
        app_save(workspace=other_workspace, kind="miniapp", appid="wx2222222222222222", name="stolen",
                 secrets={"app_secret": "f" * 32})
    assert (error.value.code, error.value.status) == ("wechat_app_taken", 409)
    assert WeChatApp.objects.get().secrets()["app_secret"] == SECRET
