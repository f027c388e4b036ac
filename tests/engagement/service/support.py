"""A small Chinese FAQ (退货 / 发货 / 会员积分 …) and helpers the service tests share."""

from __future__ import annotations

FAQ = [
    {"question": "怎么申请退货退款？", "answer": "签收后 7 天内可在「我的订单」申请退货退款。",
     "variants": ["收到的东西不满意可以退吗", "如何退换货", "退货流程是什么"], "synonyms": ["七天无理由"]},
    {"question": "下单后多久发货？", "answer": "付款后 48 小时内发货，节假日顺延。",
     "variants": ["什么时候发货", "我的快递什么时候到", "物流怎么查"], "synonyms": ["发货时间"]},
    {"question": "会员积分怎么用？", "answer": "结算时积分可抵扣现金，100 积分抵 1 元。",
     "variants": ["积分能抵现金吗", "积分有什么用", "积分可以抵扣吗"], "synonyms": ["会员积分"]},
    {"question": "积分什么时候过期？", "answer": "积分在获得次年 12 月 31 日过期。", "variants": ["积分有效期多久"],
     "synonyms": []},
    {"question": "如何成为会员？", "answer": "关注公众号并绑定手机号即成为会员。", "variants": ["怎么注册会员", "会员怎么开通"],
     "synonyms": []},
]


def faq_load(workspace, actor=None):
    from siyu.engagement.service.services import faq_save

    return [faq_save(workspace=workspace, actor=actor, **entry) for entry in FAQ]


def bot_enable(workspace, *, threshold="0.45", handoff_reply="已为您转接人工客服"):
    from siyu.engagement.service.services import settings_update

    return settings_update(workspace=workspace, actor=None, enabled=True, threshold=threshold,
                           handoff_reply=handoff_reply, handoff_sla_minutes="30", priority_sla_minutes="10")
