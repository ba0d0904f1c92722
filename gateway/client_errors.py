"""What a gateway client gets back: a reply, or an error with the gateway's ``kind``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class GatewayError(Exception):
    """The gateway refused or failed a request; ``kind`` as in QueryError, plus ``status``."""

    def __init__(self, kind: str, message: str, status: int, position: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.position = position  # q queries: 0-based character the error points at


class GatewayUnreachable(GatewayError):
    """No HTTP answer at all (refused, reset, timed out): ``kind`` unavailable, status 0."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__("unavailable", message, 0)
        self.timed_out = timed_out  # no answer in time: not failed over (it may be slow)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")
