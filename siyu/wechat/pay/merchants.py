"""Which merchant a payment or a notification belongs to: credentials from the workspace's 微信支付 account."""

from __future__ import annotations

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.wechat import credentials
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.pay.client import MerchantConfig

_CONFIGS: dict[tuple, MerchantConfig] = {}  # (app pk, stored ciphertext, workspace, mchid) -> config, per process


def _config(app: WeChatApp) -> MerchantConfig:
    """The merchant's config, decrypted once per stored value in this process (a rotated secret is a new
    ciphertext, hence a new entry; whether the account is active is still read from the database each time)."""
    key = (app.pk, bytes(app.secrets_enc or b""), app.workspace_id, app.appid)
    config = _CONFIGS.get(key)
    if config is None:
        config = _config_build(app)
        if len(_CONFIGS) > 256:
            _CONFIGS.clear()
        _CONFIGS[key] = config
    return config


def _config_build(app: WeChatApp) -> MerchantConfig:
    secrets = app.secrets()
    if not (secrets.get("platform_public_key") and secrets.get("platform_public_key_id")):
        raise SiyuError("wechat_pay_not_configured", "微信支付尚未配置平台公钥及其 ID",
                        "WeChat Pay needs the platform public key and its id", status=409,
                        details={"mchid": app.appid})
    return MerchantConfig(
        workspace_id=app.workspace_id, mchid=app.appid, appid=str(secrets.get("appid") or ""),
        api_v3_key=secrets["api_v3_key"], merchant_serial_no=secrets["merchant_serial_no"],
        merchant_private_key=secrets["merchant_private_key"], platform_public_key=secrets["platform_public_key"],
        platform_public_key_id=secrets["platform_public_key_id"])


def merchant_config(*, mchid: str) -> MerchantConfig:
    """The active merchant ``mchid`` (404 when unknown or disabled, 409 when not fully configured)."""
    return _config(credentials.app_for(kind=AppKind.PAY, appid=mchid))


def workspace_merchant(*, workspace: Workspace, mchid: str | None = None) -> MerchantConfig:
    """The workspace's merchant (``mchid`` when it has several)."""
    apps = [app for app in credentials.apps_of(workspace=workspace, kind=AppKind.PAY) if app.is_active]
    if mchid:
        apps = [app for app in apps if app.appid == mchid]
    if not apps:
        raise SiyuError("wechat_pay_not_connected", "尚未接入微信支付商户号", "No WeChat Pay merchant is connected",
                        status=409)
    return _config(apps[0])
