"""The touchpoints of SPEC T1 as stable channel codes, and normalisation of what clients send us.

Events and customers carry a channel *code*; the channels app keeps the registry (owner, cost,
targets) for the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelCode:
    code: str
    name_zh: str
    name_en: str
    category: str  # wechat | external | offline | referral


CHANNELS: tuple[ChannelCode, ...] = (
    ChannelCode("official_account", "公众号", "Official account", "wechat"),
    ChannelCode("mini_program", "小程序", "Mini-program", "wechat"),
    ChannelCode("community", "社群", "Community groups", "wechat"),
    ChannelCode("wecom", "企业微信/个人号", "WeCom / personal account", "wechat"),
    ChannelCode("channels", "视频号", "WeChat Channels", "wechat"),
    ChannelCode("xiaohongshu", "小红书", "Xiaohongshu", "external"),
    ChannelCode("douyin", "抖音/快手", "Douyin / Kuaishou", "external"),
    ChannelCode("search", "百度/知乎", "Baidu / Zhihu", "external"),
    ChannelCode("ecommerce", "淘宝/京东(包裹卡)", "Taobao / JD (package card)", "external"),
    ChannelCode("store", "门店", "Stores", "offline"),
    ChannelCode("event", "地推/快闪/展会", "Street promotion / pop-ups / fairs", "offline"),
    ChannelCode("partner", "异业合作", "Partner brands", "offline"),
    ChannelCode("referral", "老客推荐", "Customer referral", "referral"),
)
BY_CODE = {channel.code: channel for channel in CHANNELS}

_ALIASES = {
    "xhs": "xiaohongshu", "redbook": "xiaohongshu", "小红书": "xiaohongshu",
    "kuaishou": "douyin", "tiktok": "douyin", "抖音": "douyin", "快手": "douyin",
    "baidu": "search", "zhihu": "search", "百度": "search", "知乎": "search",
    "taobao": "ecommerce", "jd": "ecommerce", "tmall": "ecommerce", "淘宝": "ecommerce", "京东": "ecommerce",
    "mp": "official_account", "wechat_mp": "official_account", "公众号": "official_account",
    "weapp": "mini_program", "miniprogram": "mini_program", "小程序": "mini_program",
    "group": "community", "社群": "community", "qywx": "wecom", "企业微信": "wecom",
    "video": "channels", "视频号": "channels", "shop": "store", "offline": "store", "门店": "store",
    "invite": "referral", "fission": "referral", "老带新": "referral", "老客推荐": "referral",
}


def channel_normalize(value: str | None) -> str:
    """Map a channel or utm_source as clients write it to a channel code; unknown values pass through
    lower-cased (a brand may track its own channels), empty stays empty."""
    if not value:
        return ""
    cleaned = value.strip().lower()
    if cleaned in BY_CODE:
        return cleaned
    return _ALIASES.get(cleaned, _ALIASES.get(value.strip(), cleaned))[:32]


def channel_label(code: str, language: str = "zh-hans") -> str:
    channel = BY_CODE.get(code)
    if channel is None:
        return code or ("未知" if language.startswith("zh") else "unknown")
    return channel.name_zh if language.startswith("zh") else channel.name_en
