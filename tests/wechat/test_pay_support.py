"""Shared set-up for the 微信支付 tests (no tests here): a merchant connected on both sides of the wire."""

from __future__ import annotations

from dataclasses import dataclass

from siyu.core.models import Workspace
from siyu.wechat.credentials import app_save
from siyu.wechat.pay.client import MerchantConfig
from siyu.wechat.pay.merchants import merchant_config
from siyu.wechat_sim import pay as sim_pay
from siyu.wechat_sim import paycrypto
from siyu.wechat_sim.server import Simulator
from siyu.wechat_sim.state import SimUser

MCHID = "1900009191"
APPID = "wxd678efh567hg6787"
API_V3_KEY = "a12d3924fd499edac8a5efc8b2c3d4e5"


def merchant_key():
    return paycrypto.key_cached("test-merchant")  # generated once per test session


def merchant_serial() -> str:
    return paycrypto.key_fingerprint(merchant_key())


@dataclass
class Shop:
    sim: Simulator
    workspace: Workspace
    config: MerchantConfig

    def payer(self, key: str = "u-payer") -> tuple[SimUser, str]:
        user = self.sim.state.user(key)
        return user, self.sim.state.openid(user, APPID)


def connect_merchant(sim: Simulator, workspace: Workspace, *, mchid: str = MCHID) -> MerchantConfig:
    sim_pay.merchant_register(sim, mchid=mchid, api_v3_key=API_V3_KEY, merchant_serial_no=merchant_serial(),
                              merchant_public_key=paycrypto.public_pem(merchant_key()), appids=[APPID])
    platform = sim_pay.platform_public(sim)
    app_save(workspace=workspace, kind="pay", appid=mchid, name="测试商户", secrets={
        "api_v3_key": API_V3_KEY, "merchant_serial_no": merchant_serial(),
        "merchant_private_key": paycrypto.private_pem(merchant_key()),
        "platform_public_key": platform["public_key"], "platform_public_key_id": platform["public_key_id"],
        "appid": APPID})
    return merchant_config(mchid=mchid)


def shop_open(sim: Simulator, workspace: Workspace, settings) -> Shop:
    """Siyu's public URL is the simulator's label for it, so notify_url leads back in-process."""
    settings.SIYU_PUBLIC_URL = sim.siyu_url
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.01, 0.01)
    return Shop(sim, workspace, connect_merchant(sim, workspace))


def notify(shop: Shop, body: bytes, headers: dict[str, str], *, refund: bool = False) -> tuple[int, bytes]:
    """Deliver a (possibly forged) notification the way the simulator does."""
    path = "refund-notify" if refund else "notify"
    return shop.sim.deliver(f"{shop.sim.siyu_url}/wx/pay/{shop.config.mchid}/{path}", body, headers)
