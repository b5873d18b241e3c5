"""Every body format over real HTTP: status codes, JSON shapes, X-Model-Version, 4xx paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jupyter_mlplat.errors import InvalidSpecError, SignatureError
from jupyter_mlplat.serving import protocols

from .conftest import ROWS


def test_decode_v2_columns_and_tensor() -> None:
    sig = {"inputs": {"type": "dataframe", "columns": [{"name": "a", "dtype": "float64"},
                                                       {"name": "n", "dtype": "int64"}]}}
    body = {"id": "r1", "inputs": [
        {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [0.5, 1.5]},
        {"name": "n", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
    X, rid = protocols.decode_v2(body, sig)
    assert rid == "r1" and list(X) == ["a", "n"] and X["n"].tolist() == [1, 2]
    X, _ = protocols.decode_v2({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
                                            "data": [[1, 2], [3, 4]]}]})
    assert X.shape == (2, 2)
    with pytest.raises(SignatureError, match=r"shape \[3, 2\] needs 6 values, got 4"):
        protocols.decode_v2({"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP32",
                                         "data": [1, 2, 3, 4]}]})
    with pytest.raises(SignatureError, match="declared INT64"):
        protocols.decode_v2({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64",
                                         "data": ["a"]}]})
    with pytest.raises(InvalidSpecError, match="non-empty 'inputs'"):
        protocols.decode_v2({"instances": []})
    with pytest.raises(InvalidSpecError, match="lacks"):
        protocols.decode_v2({"inputs": [{"name": "x"}]})


def test_decode_mlflow_formats() -> None:
    split = protocols.decode_mlflow({"dataframe_split": {"columns": ["a", "n"],
                                                         "data": [[1.0, 2]]}})
    assert isinstance(split, pd.DataFrame) and list(split.columns) == ["a", "n"]
    records = protocols.decode_mlflow({"dataframe_records": [{"a": 1.0, "n": 2}]})
    assert isinstance(records, pd.DataFrame)
    assert protocols.decode_mlflow({"instances": [[1, 2]]}).shape == (1, 2)
    assert protocols.decode_mlflow({"inputs": {"a": [1.0], "n": [2]}}) == {"a": [1.0], "n": [2]}
    with pytest.raises(InvalidSpecError, match="exactly one of"):
        protocols.decode_mlflow({"instances": [[1]], "inputs": [[1]]})
    with pytest.raises(InvalidSpecError, match="exactly one of"):
        protocols.decode_mlflow({})


def test_encode_v2_and_predictions() -> None:
    out = protocols.encode_v2(np.array([1.5, np.nan]), model_name="ep", model_version="m@1",
                              request_id="x")
    assert out == {"model_name": "ep", "model_version": "m@1", "id": "x", "outputs": [
        {"name": "output-0", "shape": [2], "datatype": "FP64", "data": [1.5, None]}]}
    assert protocols.encode_predictions(np.array([[1, 2]])) == {"predictions": [[1, 2]]}
    frame = pd.DataFrame({"p": [0.1], "label": ["x"]})
    assert protocols.encode_predictions(frame) == {"predictions": [{"p": 0.1, "label": "x"}]}


async def test_v2_v1_mlflow_over_http(world, harness) -> None:
    v = world.linear("lin", 2.0)
    f = world.frame("tab", 3.0)
    world.deploy("lin", [("lin", v, 100)])
    world.deploy("tab", [("tab", f, 100)])
    lin = world.expected("lin", v).tolist()
    frame = pd.DataFrame({"a": [0.5, -1.0], "n": [1, 4]})
    tab = world.expected("tab", f, frame).tolist()
    async with harness(default_endpoint="tab") as h:
        assert await h.apply() == {"lin": "switched", "tab": "switched"}
        # V2, one tensor
        r = await h.fetch("/v2/models/lin/infer", {"id": "q1", "inputs": [
            {"name": "input-0", "shape": [3, 2], "datatype": "FP64", "data": ROWS.tolist()}]})
        assert r.code == 200, r.body
        assert r.version == f"lin@{v}" and r.headers["X-Endpoint-Revision"] == "1"
        body = r.json
        assert body["model_name"] == "lin" and body["model_version"] == f"lin@{v}"
        assert body["id"] == "q1"
        [out] = body["outputs"]
        assert out["shape"] == [3] and out["datatype"] == "FP64"
        assert np.allclose(out["data"], lin)
        # V2, one input per column (ints for the int column, floats for the float one)
        r = await h.fetch(f"/v2/models/tab/versions/{f}/infer", {"inputs": [
            {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [0.5, -1.0]},
            {"name": "n", "shape": [2, 1], "datatype": "INT64", "data": [1, 4]}]})
        assert r.code == 200, r.body
        assert r.version == f"tab@{f}" and np.allclose(r.json["outputs"][0]["data"], tab)
        # V1: rows and records
        r = await h.fetch("/v1/models/lin:predict", {"instances": ROWS.tolist()})
        assert r.code == 200 and r.version == f"lin@{v}"
        assert np.allclose(r.json["predictions"], lin)
        r = await h.fetch("/v1/models/tab:predict",
                          {"instances": frame.to_dict("records")})
        assert r.code == 200 and np.allclose(r.json["predictions"], tab)
        # MLflow: the four body formats, on the named and on the default endpoint
        bodies = [{"dataframe_split": frame.to_dict("split") | {"index": None}},
                  {"dataframe_records": frame.to_dict("records")},
                  {"instances": frame.to_dict("records")},
                  {"inputs": {"a": [0.5, -1.0], "n": [1, 4]}}]
        for b in bodies:
            b.get("dataframe_split", {}).pop("index", None)
            for path in ("/endpoints/tab/invocations", "/invocations"):
                r = await h.fetch(path, b)
                assert r.code == 200, (path, b, r.body)
                assert r.version == f"tab@{f}"
                assert np.allclose(r.json["predictions"], tab)
        # health and metadata
        assert (await h.fetch("/v2/health/live")).json == {"live": True}
        assert (await h.fetch("/v2/health/ready")).code == 200
        meta = (await h.fetch("/v2")).json
        assert meta["name"] == "jupyter-mlplat" and "model_repository_extension" in \
            meta["extensions"]
        meta = (await h.fetch("/v2/models/tab")).json
        assert meta["name"] == "tab" and meta["versions"] == [f"tab@{f}"]
        assert meta["platform"] == "sklearn" and meta["revision"] == 1
        assert [i["name"] for i in meta["inputs"]] == ["a", "n"]
        assert [i["datatype"] for i in meta["inputs"]] == ["FP64", "INT64"]
        assert (await h.fetch(f"/v2/models/tab/versions/{f}")).json["versions"] == [f"tab@{f}"]
        assert (await h.fetch("/v2/models/tab/ready")).json == {"name": "tab", "ready": True}
        assert (await h.fetch(f"/v2/models/tab/versions/{f}/ready")).code == 200


async def test_bad_inputs_are_4xx_with_what_was_expected(world, harness) -> None:
    v = world.linear("lin", 2.0)
    f = world.frame("tab")
    world.deploy("lin", [("lin", v, 100)])
    world.deploy("tab", [("tab", f, 100)])
    async with harness(max_body_size=64 * 1024) as h:
        await h.apply()
        # wrong shape
        r = await h.fetch("/v2/models/lin/infer", {"inputs": [
            {"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}]})
        assert r.code == 400 and "expected shape [-1, 2], got [2, 3]" in r.json["error"]
        assert r.version == f"lin@{v}"
        r = await h.fetch("/v1/models/lin:predict", {"instances": [[1, 2, 3]]})
        assert r.code == 400 and "[-1, 2]" in r.json["error"]
        # missing column
        r = await h.fetch("/endpoints/tab/invocations", {"dataframe_records": [{"a": 1.0}]})
        assert r.code == 400
        assert "missing columns: ['n']" in r.json["error"] and "n: int64" in r.json["error"]
        # wrong dtype: text in a number column, a fraction in an int column
        r = await h.fetch("/endpoints/tab/invocations",
                          {"dataframe_records": [{"a": "x", "n": 1}]})
        assert r.code == 400 and "'a' (float64)" in r.json["error"]
        r = await h.fetch("/endpoints/tab/invocations",
                          {"dataframe_records": [{"a": 1.0, "n": 2.5}]})
        assert r.code == 400 and "'n' (int64)" in r.json["error"]
        # not JSON, not an object, wrong body format
        r = await h.fetch("/v2/models/lin/infer", raw=b"{not json")
        assert r.code == 400 and "not valid JSON" in r.json["error"]
        r = await h.fetch("/v1/models/lin:predict", [1, 2])
        assert r.code == 400 and "JSON object" in r.json["error"]
        r = await h.fetch("/invocations", {"dataframe_records": [{"a": 1.0, "n": 1}]})
        assert r.code == 404 and "several endpoints" in r.json["error"]
        # unknown endpoint, version, route
        for path in ("/v2/models/nope/infer", "/v1/models/nope:predict",
                     "/endpoints/nope/invocations"):
            r = await h.fetch(path, {"instances": [[1, 2]]})
            assert r.code == 404 and "no endpoint 'nope'" in r.json["error"], path
        r = await h.fetch("/v2/models/lin/versions/99/infer", {"inputs": []})
        assert r.code == 404 and f"lin@{v}" not in r.json["error"]  # what it serves: untold
        assert (await h.fetch("/v2/models/nope")).code == 404
        assert (await h.fetch("/nothing/here")).code == 404
        # over the body limit
        big = b'{"instances": [' + b"[1.0, 2.0], " * 8000 + b"[1.0, 2.0]]}"
        r = await h.fetch("/v1/models/lin:predict", raw=big)
        assert r.code == 413 and "limit of 65536 bytes" in r.json["error"]
        # and the server still answers after all that
        r = await h.fetch("/v1/models/lin:predict", {"instances": ROWS.tolist()})
        assert r.code == 200


async def test_mlflow_csv_bodies(world, harness) -> None:
    f = world.frame("tab", 3.0)
    world.deploy("tab", [("tab", f, 100)])
    frame = pd.DataFrame({"a": [0.5, -1.0], "n": [1, 4]})
    expected = world.expected("tab", f, frame).tolist()
    async with harness() as h:
        await h.apply()
        csv = frame[["n", "a"]].to_csv(index=False).encode()  # columns in another order
        for path in ("/endpoints/tab/invocations", "/invocations"):
            r = await h.fetch(path, raw=csv, headers={"Content-Type": "text/csv"})
            assert r.code == 200, r.body
            assert r.json["predictions"] == pytest.approx(expected)
        bad = await h.fetch("/invocations", raw=b"n,a\n1,x\n",
                            headers={"Content-Type": "text/csv; charset=utf-8"})
        assert bad.code == 400 and "a" in bad.json["error"]
        empty = await h.fetch("/invocations", raw=b"n,a\n", headers={"Content-Type": "text/csv"})
        assert empty.code == 400 and "no rows" in empty.json["error"]
