"""A hub that caps token lifetimes (``token_expires_in_max_seconds``): a firing's token is
asked again at the hub's cap instead of failing the firing."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_mlplat.scheduler.isolation import HubKernelAccess, HubTokenError


class Answer:
    def __init__(self, status: int, data: dict[str, Any]) -> None:
        self.status_code, self._data, self.reason = status, data, "x"

    def json(self) -> dict[str, Any]:
        return self._data


def _access(answers: list[Answer], asked: list[dict[str, Any]]) -> HubKernelAccess:
    access = HubKernelAccess("mlplat+http://127.0.0.1:9/services/mlplat",
                             "http://127.0.0.1:9/hub/api", "scheduler-token")

    def request(method: str, path: str, **kwargs: Any) -> Answer:
        asked.append(kwargs.get("json") or {})
        return answers.pop(0)

    access._request = request  # type: ignore[method-assign]
    return access


def test_a_capped_hub_gets_asked_again_at_its_cap() -> None:
    asked: list[dict[str, Any]] = []
    access = _access([Answer(400, {"message": "token expires_in: 87000 must not exceed 3600"}),
                      Answer(201, {"token": "t", "id": "a1"})], asked)
    assert access._issue("alice", 87000) == ("t", "a1")
    assert [a["expires_in"] for a in asked] == [87000, 3600]


def test_other_refusals_still_fail_the_firing_with_the_hubs_reason() -> None:
    asked: list[dict[str, Any]] = []
    access = _access([Answer(403, {"message": "Action is not authorized"})], asked)
    with pytest.raises(HubTokenError, match="Action is not authorized"):
        access._issue("alice", 600)
    assert len(asked) == 1
