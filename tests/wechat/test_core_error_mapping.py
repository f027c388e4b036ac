"""How WeChat's error codes become Siyu's errors: the same code means different things on 公众号 and WeCom."""

from __future__ import annotations

import requests
from wechatpy.exceptions import WeChatClientException

from siyu.wechat.clients import WeChatRateLimited, _error_for
from siyu.wechat.models import AppKind


def test_45009_is_a_daily_quota_on_official_accounts_and_a_frequency_limit_on_wecom():
    official = _error_for(WeChatClientException(45009, "reach max api daily quota limit"), "x", kind=AppKind.OFFICIAL)
    wecom = _error_for(WeChatClientException(45009, "api freq out of limit"), "x", kind=AppKind.WORK)
    assert isinstance(official, WeChatRateLimited) and isinstance(wecom, WeChatRateLimited)
    assert official.code == "wechat_quota_daily" and 0 < official.retry_after <= 86400
    assert wecom.code == "wechat_rate_limited" and wecom.retry_after == 60.0


def test_a_post_whose_answer_timed_out_has_an_unknown_outcome_but_a_refused_connection_does_not():
    try:
        try:
            raise requests.ReadTimeout("read timed out")
        except requests.ReadTimeout as inner:
            raise WeChatClientException(None, None) from inner
    except WeChatClientException as wrapped:
        timed_out = _error_for(wrapped, "message.template.send", kind=AppKind.OFFICIAL)
    refused = _error_for(requests.ConnectionError("refused"), "message.template.send", kind=AppKind.OFFICIAL)
    assert timed_out.code == "wechat_unavailable" and timed_out.outcome_unknown
    assert refused.code == "wechat_unavailable" and not refused.outcome_unknown
