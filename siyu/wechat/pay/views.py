"""The endpoints WeChat Pay calls: payment and refund notifications for one merchant."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from siyu.wechat.pay.notifications import REFUND, TRANSACTION, notification_receive

MAX_BODY = 64 * 1024  # a real notification is about 1 KB


def _answer(request: HttpRequest, mchid: str, kind: str) -> HttpResponse:
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > MAX_BODY:
        return JsonResponse({"code": "FAIL", "message": "请求体过大"}, status=413)
    body = request.body
    if len(body) > MAX_BODY:
        return JsonResponse({"code": "FAIL", "message": "请求体过大"}, status=413)
    answer = notification_receive(mchid=mchid, kind=kind, headers=dict(request.headers), body=body)
    if answer.body is None:
        return HttpResponse(status=answer.status)
    return JsonResponse(answer.body, status=answer.status, json_dumps_params={"ensure_ascii": False})


@csrf_exempt
@require_POST
def payment_notify(request: HttpRequest, mchid: str) -> HttpResponse:
    return _answer(request, mchid, TRANSACTION)


@csrf_exempt
@require_POST
def refund_notify(request: HttpRequest, mchid: str) -> HttpResponse:
    return _answer(request, mchid, REFUND)
