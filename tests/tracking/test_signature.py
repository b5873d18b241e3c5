"""Signatures: inference from samples, checking and converting requests, v2 metadata."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from jupyter_mlplat.errors import InvalidSpecError, SignatureError
from jupyter_mlplat.tracking.signature import (
    check_input,
    describe,
    infer_signature,
    to_v2_metadata,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": np.array([31, 45, 22], dtype=np.int64),
            "income": [52.5, 61.0, 38.25],
            "plan": ["basic", "pro", "basic"],
            "active": [True, False, True],
            "tier": pd.Categorical(["a", "b", "a"], categories=["a", "b", "c"]),
            "joined": pd.to_datetime(["2024-01-02", "2023-05-06", "2022-07-08"]).astype(
                "datetime64[ns]"
            ),
        }
    )


@pytest.fixture
def frame_sig(frame: pd.DataFrame) -> dict:
    return infer_signature(frame, np.array([0, 1, 0]))


# -- inference -------------------------------------------------------------------------------


def test_infer_dataframe(frame: pd.DataFrame, frame_sig: dict) -> None:
    assert frame_sig["inputs"] == {
        "type": "dataframe",
        "columns": [
            {"name": "age", "dtype": "int64"},
            {"name": "income", "dtype": "float64"},
            {"name": "plan", "dtype": "string"},
            {"name": "active", "dtype": "bool"},
            {"name": "tier", "dtype": "category", "categories": ["a", "b", "c"]},
            {"name": "joined", "dtype": "datetime64[ns]"},
        ],
    }
    assert frame_sig["outputs"] == {"type": "tensor", "dtype": "int64", "shape": [-1]}
    json.dumps(frame_sig)  # stored as JSON
    # object-dtype text is "string" too
    obj = infer_signature(pd.DataFrame({"plan": np.array(["a", None], dtype=object)}))
    assert obj["inputs"]["columns"] == [{"name": "plan", "dtype": "string"}]


def test_infer_tensors_and_lists() -> None:
    arr = np.zeros((5, 4), dtype=np.float32)
    assert infer_signature(arr) == {
        "inputs": {"type": "tensor", "dtype": "float32", "shape": [-1, 4]},
        "outputs": None,
    }
    t = torch.zeros(3, 2, 7, dtype=torch.float64)
    assert infer_signature(t)["inputs"] == {
        "type": "tensor",
        "dtype": "float64",
        "shape": [-1, 2, 7],
    }
    assert infer_signature([[1, 2, 3], [4, 5, 6]])["inputs"] == {
        "type": "tensor",
        "dtype": "int64",
        "shape": [-1, 3],
    }
    records = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert infer_signature(records)["inputs"]["columns"] == [
        {"name": "a", "dtype": "int64"},
        {"name": "b", "dtype": "string"},
    ]
    assert infer_signature({"a": [1.0, 2.0]})["inputs"]["type"] == "dataframe"
    series = pd.Series([1.5, 2.5], name="score")
    assert infer_signature(series)["inputs"] == {
        "type": "series",
        "name": "score",
        "dtype": "float64",
    }
    assert infer_signature(None) == {}


def test_describe_and_v2(frame_sig: dict) -> None:
    assert describe(frame_sig) == (
        "dataframe[age: int64, income: float64, plan: string, active: bool, tier: category, "
        "joined: datetime64[ns]] -> tensor int64 [-1]"
    )
    assert describe({}) == "no signature"
    v2 = to_v2_metadata(frame_sig)
    assert v2["inputs"][0] == {"name": "age", "datatype": "INT64", "shape": [-1, 1]}
    assert [i["datatype"] for i in v2["inputs"]] == [
        "INT64",
        "FP64",
        "BYTES",
        "BOOL",
        "BYTES",
        "BYTES",
    ]
    assert v2["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]
    tsig = infer_signature(np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32))
    assert to_v2_metadata(tsig) == {
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1, 3]}],
    }


# -- checking: dataframes ---------------------------------------------------------------------


def test_check_dataframe_converts_requests(frame: pd.DataFrame, frame_sig: dict) -> None:
    # reordered columns with an extra one: reordered, extra dropped
    shuffled = frame[["plan", "age", "joined", "tier", "active", "income"]].assign(extra=1)
    out = check_input(frame_sig, shuffled)
    assert list(out.columns) == list(frame.columns)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), frame.astype({"plan": object}))
    # list of records, JSON-style (ints for a float column widen, dates as text)
    records = [
        {
            "age": 40,
            "income": 50,
            "plan": "pro",
            "active": False,
            "tier": "c",
            "joined": "2024-02-03",
        }
    ]
    out = check_input(frame_sig, records)
    assert out["income"].dtype == np.float64 and out["income"].iloc[0] == 50.0
    assert out["age"].dtype == np.int64
    assert str(out["joined"].dtype) == "datetime64[ns]"
    assert list(out["tier"].cat.categories) == ["a", "b", "c"]
    # dict of columns, and one record as a dict
    cols = {c: frame[c].tolist() for c in frame.columns}
    assert check_input(frame_sig, cols).shape == (3, 6)
    assert check_input(frame_sig, records[0]).shape == (1, 6)
    # rows without names are taken in the signature's order
    rows = [[40, 50.5, "pro", True, "a", "2024-02-03"]]
    assert check_input(frame_sig, rows)["plan"].iloc[0] == "pro"
    # floats that are whole numbers are fine in an int column
    assert check_input(frame_sig, frame.assign(age=[31.0, 45.0, 22.0]))["age"].dtype == np.int64


def test_check_dataframe_missing_columns(frame: pd.DataFrame, frame_sig: dict) -> None:
    with pytest.raises(SignatureError) as err:
        check_input(frame_sig, frame.drop(columns=["plan"]).rename(columns={"age": "agee"}))
    msg = str(err.value)
    assert "missing columns: ['age', 'plan']" in msg
    assert "unexpected columns: ['agee']" in msg
    assert "expected dataframe[age: int64" in msg
    assert isinstance(err.value, InvalidSpecError)  # maps to HTTP 400 / CLI usage error


def test_check_dataframe_uncastable_values(frame: pd.DataFrame, frame_sig: dict) -> None:
    bad = frame.assign(income=["high", "low", "mid"], age=[31.5, 45.0, 22.0])
    with pytest.raises(SignatureError) as err:
        check_input(frame_sig, bad)
    msg = str(err.value)
    assert "column 'age' (int64): values with a fraction cannot be int64: [31.5]" in msg
    assert "column 'income' (float64): expected numbers, got ['high', 'low', 'mid']" in msg
    with pytest.raises(SignatureError, match=r"column 'plan' \(string\): expected text, got \[7\]"):
        check_input(frame_sig, frame.assign(plan=["a", 7, "b"]))
    with pytest.raises(SignatureError, match=r"unknown categories \['zzz'\]"):
        check_input(frame_sig, frame.assign(tier=["a", "zzz", "b"]))
    with pytest.raises(SignatureError, match="missing or infinite values cannot be int64"):
        check_input(frame_sig, [{**frame.iloc[0].to_dict(), "age": None}])
    with pytest.raises(SignatureError, match="must have 6 values each"):
        check_input(frame_sig, [[1, 2, 3]])


# -- checking: tensors ------------------------------------------------------------------------


def test_check_tensor_shape_and_dtype() -> None:
    sig = infer_signature(np.zeros((5, 4), dtype=np.float32))
    out = check_input(sig, [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert out.dtype == np.float32 and out.shape == (2, 4)
    out = check_input(sig, torch.ones(3, 4, dtype=torch.float64))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 4\], got \[3, 5\]"):
        check_input(sig, np.zeros((3, 5)))
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 4\], got \[4\]"):
        check_input(sig, [1, 2, 3, 4])
    with pytest.raises(SignatureError, match="not a rectangular array"):
        check_input(sig, [[1, 2, 3, 4], [1, 2]])
    with pytest.raises(SignatureError, match=r"expected numbers, got \['x'\].*tensor float32"):
        check_input(sig, [[1, 2, 3, "x"]])
    # None is a missing value: NaN in a float tensor
    assert np.isnan(check_input(sig, [[1, None, 3, 4]])[0, 1])

    isig = infer_signature(np.zeros((2, 3), dtype=np.int32))
    assert check_input(isig, [[1.0, 2.0, 3.0]]).dtype == np.int32
    with pytest.raises(SignatureError, match=r"values with a fraction cannot be int32: \[2.5\]"):
        check_input(isig, [[1.0, 2.5, 3.0]])
    with pytest.raises(SignatureError, match="out of range for int32"):
        check_input(isig, [[1, 2, 2**40]])
    with pytest.raises(SignatureError, match=r"expected numbers, got \[True\]"):
        check_input(isig, np.array([[1, True, 3]], dtype=object))


def test_check_series_and_empty_signature() -> None:
    sig = infer_signature(pd.Series([1.5, 2.5], name="score"))
    out = check_input(sig, [1, 2, 3])
    assert out.dtype == np.float64 and out.name == "score"
    with pytest.raises(SignatureError, match="expected series score: float64"):
        check_input(sig, ["a"])
    X = object()
    assert check_input({}, X) is X
