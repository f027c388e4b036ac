"""One error type with stable codes; the API layer maps it to HTTP in one place (siyu/api.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SiyuError(Exception):
    """A refusal the user can understand: stable ``code``, HTTP ``status``, Chinese and English text."""

    code: str
    message_zh: str
    message_en: str
    status: int = 400
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message_en}"

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message_zh, "message_en": self.message_en}
        if self.details:
            body["details"] = self.details
        return body


def not_found(what_zh: str, what_en: str) -> SiyuError:
    return SiyuError("not_found", f"{what_zh}不存在", f"{what_en} not found", status=404)


def forbidden() -> SiyuError:
    return SiyuError("forbidden", "没有权限执行此操作", "You are not allowed to do this", status=403)
