"""The store service's wire format and method list, without a hub or HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.hub.policy import DENIED, EXPOSED, public_methods
from jupyter_mlplat.hub.protocol import ProtocolError, decode, encode, http_base, is_service_url
from jupyter_mlplat.store import orm
from jupyter_mlplat.store.sql import Store


def roundtrip(value):
    return decode(json.loads(json.dumps(encode(value))))


def test_values_come_back_as_they_left():
    when = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    value = {"when": when, "pair": (1, "a"), "ids": {3: "x", 4: "y"}, "$odd": [1, None],
             "nested": [{"d": timedelta(seconds=1.5)}], "f": 0.25, "s": "ü"}
    back = roundtrip(value)
    assert back == value
    assert back["when"].tzinfo is not None and back["when"] == when
    assert isinstance(back["pair"], tuple) and list(back["ids"]) == [3, 4]


def test_iterables_and_numpy_scalars_travel_as_plain_values():
    assert roundtrip(i for i in range(3)) == [0, 1, 2]
    assert roundtrip({"a": 1}.keys()) == ["a"]
    assert roundtrip(np.int64(7)) == 7 and roundtrip(np.float32(0.5)) == 0.5


def test_orm_rows_are_rebuilt_detached_with_aware_datetimes():
    run = orm.Run(id="abc", owner="alice", pipeline_id=1, pipeline_version="v",
                  notebook_path="/n.ipynb", status="running", parameters={"p": (1, 2)},
                  options={}, host="h", pid=1, pid_started=0.5, cancel_requested=False,
                  created_at=datetime(2026, 1, 1, tzinfo=UTC), started_at=None)
    back = roundtrip([run, (orm.Endpoint(id=1, owner="alice", name="e"), None)])
    row = back[0]
    assert isinstance(row, orm.Run) and row.id == "abc" and row.parameters == {"p": (1, 2)}
    assert row.created_at.tzinfo is not None and row.started_at is None
    assert isinstance(back[1], tuple) and back[1][0].name == "e" and back[1][1] is None


@pytest.mark.parametrize("data, message", [
    ({"$row": "NotATable", "columns": {}}, "unknown store row type"),
    ({"$row": "Run", "columns": {"evil": 1}}, "has no column"),
    ({"$row": "Run"}, "unknown tagged value"),
    ({"$exec": "rm -rf /"}, "unknown tagged value"),
    ({"$dt": "yesterday"}, "malformed $dt"),
    ({"$map": [[1]]}, "malformed $map"),
])
def test_malformed_or_unknown_tags_are_refused(data, message):
    with pytest.raises(ProtocolError, match=message.replace("$", r"\$")):
        decode(data)


def test_values_without_a_wire_form_are_refused_with_their_type():
    with pytest.raises(ProtocolError, match="cannot send a value of type builtins.object"):
        encode(object())


def test_every_public_store_method_is_exposed_or_refused_on_purpose():
    methods = public_methods(Store)
    unclassified = methods - set(EXPOSED) - set(DENIED)
    assert not unclassified, (
        f"store methods neither exposed nor denied by the store service: {sorted(unclassified)}"
        " (classify them in jupyter_mlplat/hub/policy.py)")
    assert not set(EXPOSED) & set(DENIED)
    # the methods that reach across owners are never exposed
    for name in ("due_schedules", "schedule_any_owner", "session", "count"):
        assert name not in EXPOSED


def test_service_urls():
    assert is_service_url("mlplat+http://127.0.0.1:8000/services/mlplat")
    assert is_service_url("mlplat+https://hub.example.org/services/mlplat/")
    assert not is_service_url("sqlite:////tmp/x.db") and not is_service_url("")
    assert http_base("mlplat+http://h:1/services/mlplat") == "http://h:1/services/mlplat/"
    with pytest.raises(InvalidSpecError, match="expected mlplat\\+http"):
        http_base("postgresql://h/db")
