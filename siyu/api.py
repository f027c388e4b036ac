"""The HTTP API (Django Ninja): one place that maps errors to HTTP and assembles every app's router."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from siyu.core.errors import SiyuError
from siyu.core.services import api_key_authenticate


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer sk_…`` — the key names the workspace the request acts in."""

    def authenticate(self, request: HttpRequest, token: str):
        workspace = api_key_authenticate(token)
        if workspace is None:
            return None
        request.workspace = workspace
        return workspace


api = NinjaAPI(
    title="Siyu API",
    version="1",
    description="私域增长平台 API。错误统一返回 {code, message, message_en}。",
    urls_namespace="api",
)


def _error(request: HttpRequest, error: SiyuError):
    return api.create_response(request, error.as_dict(), status=error.status)


@api.exception_handler(SiyuError)
def on_siyu_error(request: HttpRequest, exc: SiyuError):
    return _error(request, exc)


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError):
    return _error(request, SiyuError("invalid_request", "请求格式不正确", "The request is malformed", status=422,
                                     details={"errors": exc.errors}))


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError):
    return _error(request, SiyuError("unauthorized", "未认证或密钥无效", "Missing or invalid credentials", status=401))


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError):
    return _error(request, SiyuError("http_error", str(exc), str(exc), status=exc.status_code))


@api.get("/health", auth=None, tags=["system"])
def health(request: HttpRequest):
    return {"status": "ok"}


def _mount_routers() -> None:
    from siyu.customers.api import router as customers_router

    api.add_router("/v1", customers_router)
    api.add_router("/mini/v1", "siyu.commerce.store.api.router")
    api.add_router("/v1", "siyu.engagement.communities.api.router")  # the 会话内容存档 message bridge


_mount_routers()
