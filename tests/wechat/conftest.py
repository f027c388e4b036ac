"""Fixtures for the WeChat integration: a simulator in a thread, and Siyu pointed at it."""

from __future__ import annotations

import pytest
from django.test import Client

from siyu.wechat_sim.server import Simulator


@pytest.fixture
def wechat_sim(settings):
    """A fresh simulator on a free port; Siyu's WeChat adapters talk to it (simulator mode).

    Callbacks the simulator sends to Siyu go through Django's test client in-process, so tests keep
    the usual per-test transaction; ``sim.siyu_url`` is only a label then.
    """
    sim = Simulator(siyu_url="http://siyu.test", seed=7)
    base = sim.start()
    settings.SIYU_WECHAT_BASE_URL = base
    client = Client()

    def in_process(method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        path = url.removeprefix(sim.siyu_url)
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()
                 if name.lower() != "content-type"}
        content_type = headers.get("Content-Type") or headers.get("content-type") or "text/xml"
        response = client.generic(method, path, data=body, content_type=content_type, **extra)
        return response.status_code, response.content

    sim.transport = in_process
    yield sim
    sim.stop()


# --- registered apps (in the simulator and in Siyu at once) ----------------------------------------

def _pem_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture
def wechat_app_factory(wechat_sim, workspace):
    """``make(kind, *, workspace=..., appid=..., name=..., callback_url=..., **secrets) -> WeChatApp``.

    Registers the account in Siyu (``app_save``, secrets encrypted) and the same credentials in the
    simulator (``SimApp``), so SDK calls and callbacks work both ways. Defaults: official accounts in
    safe mode; WeCom with both secrets and callback Token/EncodingAESKey; pay with a fresh merchant
    RSA key (its public key in ``SimApp.extra["merchant_public_key"]``), API v3 key and serial number.
    ``extra`` (a dict) is passed to the SimApp only (e.g. ``{"open_platform": "brand"}``).
    """
    import secrets as random_secrets

    from siyu.wechat.credentials import app_save
    from siyu.wechat_sim.crypto import random_encoding_aes_key
    from siyu.wechat_sim.state import SimApp

    counter = iter(range(1, 10_000))

    def make(kind: str = "official", *, workspace=workspace, appid: str | None = None, name: str | None = None,
             callback_url: str = "", extra: dict | None = None, **secrets):
        number = next(counter)
        sim_extra = dict(extra or {})
        if kind in {"official", "miniapp"}:
            appid = appid or f"wx{kind[:4]}{number:04d}{random_secrets.token_hex(4)}"
            secrets.setdefault("app_secret", random_secrets.token_hex(16))
            if kind == "official":
                secrets.setdefault("token", "tok" + random_secrets.token_hex(6))
                secrets.setdefault("encoding_aes_key", random_encoding_aes_key())
                secrets.setdefault("message_mode", "safe")
            sim = SimApp(kind, appid, secret=secrets["app_secret"], token=secrets.get("token", ""),
                         encoding_aes_key=secrets.get("encoding_aes_key", ""), callback_url=callback_url,
                         extra=sim_extra)
        elif kind == "work":
            appid = appid or f"ww{number:04d}{random_secrets.token_hex(7)}"
            secrets.setdefault("contact_secret", random_secrets.token_hex(20))
            secrets.setdefault("app_secret", random_secrets.token_hex(20))
            secrets.setdefault("agent_id", "1000002")
            secrets.setdefault("token", "tok" + random_secrets.token_hex(6))
            secrets.setdefault("encoding_aes_key", random_encoding_aes_key())
            sim_extra.setdefault("secrets", {"contact": secrets["contact_secret"], "app": secrets["app_secret"]})
            sim_extra.setdefault("agent_id", secrets["agent_id"])
            sim = SimApp(kind, appid, secret=secrets["contact_secret"], token=secrets["token"],
                         encoding_aes_key=secrets["encoding_aes_key"], callback_url=callback_url, extra=sim_extra)
        elif kind == "pay":
            appid = appid or f"19{number:04d}{random_secrets.randbelow(10**4):04d}"
            if "merchant_private_key" not in secrets:
                private, public = _pem_pair()
                secrets["merchant_private_key"] = private
                sim_extra.setdefault("merchant_public_key", public)
            secrets.setdefault("api_v3_key", random_secrets.token_hex(16))
            secrets.setdefault("merchant_serial_no", random_secrets.token_hex(20).upper())
            sim_extra.setdefault("api_v3_key", secrets["api_v3_key"])
            sim_extra.setdefault("merchant_serial_no", secrets["merchant_serial_no"])
            sim = SimApp(kind, appid, secret=secrets["api_v3_key"], callback_url=callback_url, extra=sim_extra)
        else:
            raise ValueError(kind)
        with wechat_sim.lock:
            wechat_sim.state.app_register(sim)
        return app_save(workspace=workspace, kind=kind, appid=appid, name=name or f"{kind} {number}",
                        secrets=secrets)

    return make


@pytest.fixture
def official_app(wechat_app_factory):
    """A safe-mode official account registered in the simulator and in Siyu."""
    return wechat_app_factory("official")


@pytest.fixture
def miniapp_app(wechat_app_factory):
    return wechat_app_factory("miniapp")


@pytest.fixture
def work_app(wechat_app_factory):
    """A WeCom corp with 客户联系 and self-built app secrets and callback Token/EncodingAESKey."""
    return wechat_app_factory("work")
