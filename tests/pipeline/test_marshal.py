"""marshal: typed save/load of step outputs, safe formats first, refusals that run nothing."""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jupyter_mlplat.errors import SerializationError, UnsafeArtifactError
from jupyter_mlplat.pipeline.marshal import (
    ArtifactRef,
    fingerprint,
    load_value,
    load_values,
    save_value,
    save_values,
)
from jupyter_mlplat.store.artifacts import ArtifactStore
from tests import crafted

torch = pytest.importorskip("torch")


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def roundtrip(value: Any, store: ArtifactStore, **kw: Any) -> tuple[ArtifactRef, Any]:
    ref = save_value(value, name="x", step="s", store=store)
    # refs travel as JSON (SQL rows, HTTP): load from the decoded form
    ref = ArtifactRef.from_dict(json.loads(json.dumps(ref.to_dict())))
    return ref, load_value(ref, store=store, **kw)


def objects(store: ArtifactStore) -> list[Path]:
    return [p for p in Path(store.root, "objects").rglob("*") if p.is_file()]


def same(a: Any, b: Any) -> bool:
    """Equal values of exactly the same types, recursively (nan equals nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


# -- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**100),
        1.5,
        -0.0,
        float("nan"),
        float("inf"),
        float("-inf"),
        "héllo \u2603 \ud800",
        [],
        {},
        [1, "a", None, [2.5, False]],
        {"a": {"b": [1, {"c": None}]}, "d": [True, 1]},
        (1, 2),
        [(1, (2, "x")), ()],
        {"t": (1.0, float("nan"))},
        {1: "one", 2.5: "x", None: 0, (1, 2): "tuple key", "s": "str key"},
        {"__tuple__": [1, 2]},
        {"__float__": "nan"},
        {"__dict__": []},
    ],
)
def test_json_values_roundtrip_exactly(value: Any, store: ArtifactStore) -> None:
    ref, out = roundtrip(value, store)
    assert ref.format == "json" and ref.uri.endswith(".json") and not ref.trusted_only
    assert same(value, out), (value, out)


def test_plain_json_stays_plain(store: ArtifactStore) -> None:
    ref = save_value({"a": [1, 2.5, "x", None, True]}, name="cfg", step="s", store=store)
    assert json.loads(store.read_bytes(ref.uri)) == {"a": [1, 2.5, "x", None, True]}
    assert ref.type_name == "builtins.dict"


# -- numpy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype=np.int8).reshape(3, 4),
        np.arange(5, dtype=np.uint16),
        np.array([1.5, np.nan, -np.inf], dtype=np.float32),
        np.asfortranarray(np.random.default_rng(0).random((3, 4))),
        np.array([1 + 2j, 3j], dtype=np.complex128),
        np.array([True, False]),
        np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
        np.array(["ab", "cde"], dtype="<U5"),
        np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        np.array(3.25),
        np.empty((0, 3)),
    ],
    ids=lambda a: str(a.dtype) + str(a.shape),
)
def test_ndarray_roundtrip(arr: np.ndarray, store: ArtifactStore) -> None:
    ref, out = roundtrip(arr, store)
    assert ref.format == "npy" and ref.type_name == "numpy.ndarray"
    assert type(out) is np.ndarray and out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    "scalar",
    [
        np.float32(1.5),
        np.float64(np.nan),
        np.int64(-3),
        np.uint8(255),
        np.bool_(True),
        np.complex64(1 - 1j),
        np.datetime64("2020-01-01T10:00", "m"),
        np.str_("hi"),
    ],
    ids=lambda s: type(s).__name__,
)
def test_numpy_scalar_roundtrip(scalar: Any, store: ArtifactStore) -> None:
    ref, out = roundtrip(scalar, store)
    assert ref.format == "npy" and ref.meta == {"scalar": True}
    assert type(out) is type(scalar) and out.dtype == scalar.dtype
    np.testing.assert_array_equal(out, scalar)


def test_object_array_falls_back_to_cloudpickle(store: ArtifactStore) -> None:
    arr = np.array([{"a": 1}, None], dtype=object)
    ref, out = roundtrip(arr, store)
    assert ref.format == "cloudpickle" and ref.trusted_only
    assert "object" in ref.meta["fallback_reason"]
    assert list(out) == list(arr)


# -- pandas -----------------------------------------------------------------------------------


def mixed_frame() -> pd.DataFrame:
    n = 4
    return pd.DataFrame(
        {
            "i": np.arange(n),
            "f": np.linspace(0, 1, n),
            "f32": np.arange(n, dtype="float32"),
            "b": [True, False, True, False],
            "s": ["a", "b", None, "d"],
            "cat": pd.Categorical(["x", "y", "x", None], categories=["y", "x"], ordered=True),
            "dt": pd.date_range("2024-01-01", periods=n),
            "dttz": pd.date_range("2024-01-01", periods=n, tz="Europe/Paris"),
            "td": pd.to_timedelta(np.arange(n), unit="s"),
            "Int": pd.array([1, None, 3, 4], dtype="Int64"),
            "boolean": pd.array([True, None, False, True], dtype="boolean"),
            "string": pd.array(["x", None, "z", "w"], dtype="string"),
            "bytes": np.array([b"a", b"b", b"", b"d"], dtype=object),
        },
        index=pd.Index(list("wxyz"), name="key"),
    )


FRAMES = {
    "mixed": mixed_frame(),
    "range_step": pd.DataFrame({"a": [1.0, 2.0]}, index=pd.RangeIndex(10, 14, 2)),
    "multiindex": pd.DataFrame(
        {"a": [1, 2]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", None])
    ),
    "int_columns": pd.DataFrame(np.arange(6).reshape(2, 3)),
    "multi_columns": pd.DataFrame(
        [[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])
    ),
    "dt_index_freq": pd.DataFrame(
        {"a": [1, 2, 3]}, index=pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    ),
    "named_columns": pd.DataFrame({"a": [1]}).rename_axis(columns="cols"),
    "empty": pd.DataFrame({"a": pd.Series([], dtype="float64")}),
    "no_columns": pd.DataFrame(),
}


@pytest.mark.parametrize("key", list(FRAMES))
def test_dataframe_roundtrip(key: str, store: ArtifactStore) -> None:
    df = FRAMES[key]
    ref, out = roundtrip(df, store)
    assert ref.format == "parquet", ref.meta
    assert ref.type_name == "pandas.DataFrame" and not ref.trusted_only  # pandas 3 names
    pd.testing.assert_frame_equal(out, df, check_exact=True)
    if key == "dt_index_freq":
        assert out.index.freq == df.index.freq


SERIES = {
    "named": pd.Series([1.5, 2.5], name="price", index=pd.Index(["a", "b"], name="sku")),
    "unnamed": pd.Series([1, 2, 3]),
    "int_name": pd.Series(["x", "y"], name=7),
    "tuple_name": pd.Series([1, 2], name=("a", 1)),
    "name_equals_index_name": pd.Series([1, 2], name="k", index=pd.Index([5, 6], name="k")),
    "categorical": pd.Series(pd.Categorical(["a", "b", "a"]), name="c"),
    "datetime": pd.Series(pd.date_range("2020", periods=2, tz="UTC"), name="when"),
}


@pytest.mark.parametrize("key", list(SERIES))
def test_series_roundtrip(key: str, store: ArtifactStore) -> None:
    s = SERIES[key]
    ref, out = roundtrip(s, store)
    assert ref.format == "parquet" and ref.type_name == "pandas.Series"
    pd.testing.assert_series_equal(out, s, check_exact=True)
    assert type(out.name) is type(s.name)


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame({"o": pd.Series([{"a": 1}, {"b": 2}], dtype=object)}),  # structs in arrow
        pd.DataFrame({"o": pd.Series(["a", 1], dtype=object)}),  # mixed objects
        pd.DataFrame({"o": pd.Series(["a", "b"], dtype=object)}),  # would come back as str
        pd.DataFrame({"c": pd.Categorical([1, 2, 1])}),  # int categories are lost by parquet
        pd.DataFrame([[1, 2]], columns=["a", "a"]),  # duplicate labels
        pd.DataFrame([[1, 2]], columns=[0, "a"]),  # mixed labels
        pd.DataFrame({"t": np.array(["2020-01-01"], dtype="datetime64[s]")}),  # unit coerced
        pd.Series([1, 2], name=pd.Timestamp("2020-01-01")),
    ],
    ids=["dicts", "mixed", "objstr", "intcat", "dupcols", "mixedlabels", "dt_s", "tsname"],
)
def test_pandas_that_parquet_cannot_hold_falls_back(value: Any, store: ArtifactStore) -> None:
    ref, out = roundtrip(value, store)
    assert ref.format == "cloudpickle" and ref.trusted_only and ref.meta["fallback_reason"]
    if isinstance(value, pd.Series):
        pd.testing.assert_series_equal(out, value, check_exact=True)
    else:
        pd.testing.assert_frame_equal(out, value, check_exact=True)


def test_dataframe_subclass_keeps_its_type(store: ArtifactStore) -> None:
    ref, out = roundtrip(MyFrame({"a": [1]}), store)
    assert ref.format == "cloudpickle" and type(out) is MyFrame


class MyFrame(pd.DataFrame):
    @property
    def _constructor(self) -> type:
        return MyFrame


# -- torch ------------------------------------------------------------------------------------


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = torch.nn.Linear(4, 8)
        self.l2 = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.relu(self.l1(x)))


class Unscriptable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x: Any) -> Any:
        # numpy inside forward: TorchScript cannot compile it
        return self.lin(torch.as_tensor(np.asarray(x), dtype=torch.float32))


def test_tensors_roundtrip(store: ArtifactStore) -> None:
    for t in (
        torch.arange(10, dtype=torch.float32).reshape(2, 5),
        torch.tensor([1, 2], dtype=torch.int64),
        torch.tensor([], dtype=torch.bfloat16),
        torch.nn.Parameter(torch.ones(3)),
    ):
        ref, out = roundtrip(t, store)
        assert ref.format == "torch" and ref.uri.endswith(".pt") and not ref.trusted_only
        assert type(out) is type(t) and out.dtype == t.dtype
        assert torch.equal(out, t) and out.requires_grad == t.requires_grad


def test_state_dicts_roundtrip(store: ArtifactStore) -> None:
    torch.manual_seed(0)
    net = Net()
    sd = net.state_dict()
    ref, out = roundtrip(sd, store)
    assert ref.format == "torch" and ref.type_name == "collections.OrderedDict"
    assert type(out) is collections.OrderedDict and list(out) == list(sd)
    assert all(torch.equal(out[k], sd[k]) for k in sd)

    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 4)).sum().backward()
    opt.step()
    osd = opt.state_dict()
    ref, out = roundtrip(osd, store)
    assert ref.format == "torch"
    assert out["param_groups"] == osd["param_groups"]
    assert torch.equal(out["state"][0]["exp_avg"], osd["state"][0]["exp_avg"])


def test_same_tensor_same_sha(store: ArtifactStore) -> None:
    a = save_value(torch.arange(5.0), name="a", step="s", store=store)
    b = save_value(torch.arange(5.0), name="b", step="s", store=store)
    assert a.sha256 == b.sha256


def test_scriptable_module_saved_as_torchscript(store: ArtifactStore) -> None:
    torch.manual_seed(0)
    net = Net().eval()
    ref, out = roundtrip(net, store)
    assert ref.format == "torchscript" and not ref.trusted_only
    assert ref.type_name == f"{__name__}.Net"
    x = torch.randn(3, 4)
    assert torch.equal(out(x), net(x)) and out.training is False
    # deterministic: the same module saves to the same object
    assert save_value(net, name="y", step="s", store=store).sha256 == ref.sha256


def test_unscriptable_module_falls_back_to_cloudpickle(store: ArtifactStore) -> None:
    m = Unscriptable()
    ref, out = roundtrip(m, store)
    assert ref.format == "cloudpickle" and ref.trusted_only
    assert "torch.jit.script" in ref.meta["fallback_reason"]
    x = np.ones((2, 3), dtype=np.float32)
    assert type(out) is Unscriptable and torch.equal(out(x), m(x))
    with pytest.raises(UnsafeArtifactError):
        load_value(ref, store=store, allow_trusted_only=False)


# -- scikit-learn -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 80),
            "spend": rng.gamma(2, 10, 80),
            "plan": rng.choice(["basic", "pro", "team"], 80),
        }
    )
    y = (X["spend"] + rng.normal(0, 5, 80) > 20).to_numpy().astype(int)
    return X, y


def test_logistic_regression_roundtrip(store: ArtifactStore, churn: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = churn
    model = LogisticRegression().fit(X[["age", "spend"]], y)
    ref, out = roundtrip(model, store)
    assert ref.format == "skops" and ref.uri.endswith(".skops") and not ref.trusted_only
    assert type(out) is LogisticRegression
    np.testing.assert_array_equal(
        out.predict_proba(X[["age", "spend"]]), model.predict_proba(X[["age", "spend"]])
    )
    # skops output is made deterministic: an equal model (other object ids) gives the same sha
    clone = pickle.loads(pickle.dumps(model))
    assert save_value(clone, name="m2", step="s", store=store).sha256 == ref.sha256


def test_pipeline_roundtrip(store: ArtifactStore, churn: Any) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = churn
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        (
                            "num",
                            Pipeline([("imp", SimpleImputer()), ("sc", StandardScaler())]),
                            ["age", "spend"],
                        ),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(X, y)
    ref, out = roundtrip(pipe, store)
    assert ref.format == "skops" and not ref.trusted_only
    np.testing.assert_array_equal(out.predict_proba(X), pipe.predict_proba(X))
    assert load_value(ref, store=store, allow_trusted_only=False) is not None  # safe for anyone


def test_tree_models_are_skops_but_trusted_only(store: ArtifactStore, churn: Any) -> None:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    X, y = churn
    for model in (
        RandomForestClassifier(n_estimators=5, random_state=0).fit(X[["age", "spend"]], y),
        GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X[["age", "spend"]], y),
    ):
        ref, out = roundtrip(model, store)
        assert ref.format == "skops" and ref.trusted_only
        assert ref.meta["unchecked_types"] == ["sklearn.tree._tree.Tree"]
        np.testing.assert_array_equal(
            out.predict(X[["age", "spend"]]), model.predict(X[["age", "spend"]])
        )
        with pytest.raises(UnsafeArtifactError, match="trusted-only"):
            load_value(ref, store=store, allow_trusted_only=False)
        # a ref that lies about being safe is refused by the file check itself
        lying = ArtifactRef.from_dict({**ref.to_dict(), "trusted_only": False})
        with pytest.raises(UnsafeArtifactError, match=r"sklearn\.tree\._tree\.Tree"):
            load_value(lying, store=store, allow_trusted_only=False)


class CustomScaler:
    def fit(self, X: Any, y: Any = None) -> CustomScaler:
        return self

    def transform(self, X: Any) -> Any:
        return X * 2


def test_sklearn_pipeline_with_a_custom_step_falls_back(store: ArtifactStore, churn: Any) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = churn
    pipe = Pipeline([("s", CustomScaler()), ("clf", LogisticRegression())]).fit(X[["age"]], y)
    ref, out = roundtrip(pipe, store)
    assert ref.format == "cloudpickle" and ref.trusted_only
    assert f"{__name__}.CustomScaler" in ref.meta["fallback_reason"]
    np.testing.assert_array_equal(out.predict(X[["age"]]), pipe.predict(X[["age"]]))


def test_trust_list_names_resolve() -> None:
    import importlib

    from jupyter_mlplat.tracking import trust

    for name in trust.SKOPS_TRUSTED_TYPES + trust.SKOPS_UNCHECKED_CONTENT_TYPES:
        module, _, attr = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), name
    safe = trust.skops_trusted_types()
    assert "sklearn.linear_model._logistic.LogisticRegression" in safe
    assert "sklearn.pipeline.Pipeline" in safe
    assert not set(trust.SKOPS_UNCHECKED_CONTENT_TYPES) & set(safe)
    assert set(trust.SKOPS_UNCHECKED_CONTENT_TYPES) <= set(
        trust.skops_trusted_types(include_unchecked_content=True)
    )


# -- cloudpickle and errors -------------------------------------------------------------------


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_custom_class_via_cloudpickle(store: ArtifactStore) -> None:
    ref, out = roundtrip(Point(1, 2), store)
    assert ref.format == "cloudpickle" and ref.trusted_only and ref.uri.endswith(".pkl")
    assert ref.type_name == f"{__name__}.Point" and out == Point(1, 2)
    with pytest.raises(UnsafeArtifactError, match="trusted-only"):
        load_value(ref, store=store, allow_trusted_only=False)


def _gen() -> Any:
    yield 1


@pytest.mark.parametrize(
    ("make", "type_text", "hint"),
    [
        (lambda tmp: _gen(), "generator", "make it a list"),
        (lambda tmp: open(tmp / "f.txt", "w"), "_io.TextIOWrapper", "reopen it"),
        (lambda tmp: threading.Lock(), "_thread.lock", "create it in the consuming step"),
        (lambda tmp: os, "module", "import it in the consuming step"),
    ],
    ids=["generator", "file", "lock", "module"],
)
def test_unserialisable_output_names_variable_type_and_step(
    make: Any, type_text: str, hint: str, store: ArtifactStore, tmp_path: Path
) -> None:
    value = make(tmp_path)
    try:
        with pytest.raises(SerializationError) as err:
            save_values({"ok": 1, "bad": value}, step="featurize", store=store)
    finally:
        if isinstance(value, io.IOBase):
            value.close()
    msg = str(err.value)
    assert "step 'featurize'" in msg and "output 'bad'" in msg and f"of type {type_text}" in msg
    assert hint in msg
    if type_text != "module":
        assert "cloudpickle failed" in msg and "Outputs must be" in msg


def test_content_addressing(store: ArtifactStore) -> None:
    df = mixed_frame()
    a = save_value(df, name="a", step="s", store=store)
    b = save_value(df.copy(), name="b", step="other", store=store)
    c = save_value(df.assign(i=df["i"] + 1), name="c", step="s", store=store)
    assert a.sha256 == b.sha256 == fingerprint(a) and a.uri == b.uri
    assert c.sha256 != a.sha256
    assert len(objects(store)) == 2
    x = save_value(np.arange(3), name="x", step="s", store=store)
    assert save_value(np.arange(3), name="x", step="s", store=store).sha256 == x.sha256
    assert save_value(np.arange(4), name="x", step="s", store=store).sha256 != x.sha256


def test_no_temp_files_left(store: ArtifactStore, tmp_path: Path) -> None:
    save_values({"a": np.arange(3), "b": mixed_frame(), "c": Point(0, 0)}, step="s", store=store)
    with pytest.raises(SerializationError):
        save_value(_gen(), name="g", step="s", store=store)
    assert list(Path(store.root, ".staging").iterdir()) == []
    assert all(p.suffix in (".npy", ".parquet", ".pkl") for p in objects(store))


def test_remote_store_stages_in_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    remote = ArtifactStore(f"memory://mlplat-stage-{tmp_path.name}", cache_dir=str(tmp_path / "c"))
    try:
        save_value(np.arange(3), name="a", step="s", store=remote)
        assert list(scratch.iterdir()) == []
    finally:
        fsspec.filesystem("memory").rm(remote.root, recursive=True)


def test_save_and_load_values(store: ArtifactStore) -> None:
    values = {"n": 3, "arr": np.ones(2), "df": mixed_frame(), "t": (1, "a")}
    refs = save_values(values, step="s", store=store)
    assert {k: r.format for k, r in refs.items()} == {
        "n": "json",
        "arr": "npy",
        "df": "parquet",
        "t": "json",
    }
    out = load_values(refs, store=store, allow_trusted_only=False)
    assert out["n"] == 3 and out["t"] == (1, "a")
    pd.testing.assert_frame_equal(out["df"], values["df"])


def test_ref_dict_roundtrip_and_validation(store: ArtifactStore) -> None:
    ref = save_value([1], name="v", step="s", store=store)
    assert ArtifactRef.from_dict(ref.to_dict()) == ref
    hash(ref)
    with pytest.raises(SerializationError):
        ArtifactRef.from_dict({**ref.to_dict(), "format": "exe"})


def test_refs_load_from_another_mount_of_the_store(store: ArtifactStore) -> None:
    ref = save_value(np.arange(3), name="v", step="s", store=store)
    other = ArtifactStore("file://" + store.root)
    np.testing.assert_array_equal(load_value(ref, store=other), np.arange(3))


def test_remote_store(tmp_path: Path) -> None:
    import fsspec

    url = f"memory://mlplat-marshal-{tmp_path.name}"
    remote = ArtifactStore(url, cache_dir=str(tmp_path / "cache"))
    try:
        ref, out = roundtrip(mixed_frame(), remote)
        assert ref.uri.startswith("memory://")
        pd.testing.assert_frame_equal(out, mixed_frame())
    finally:
        fsspec.filesystem("memory").rm(remote.root, recursive=True)


# -- crafted payloads: refused before anything runs --------------------------------------------


class _Payload:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> Any:
        return (exec, (f"open({str(self.sentinel)!r}, 'w').write('pwned')",))


def _crafted_ref(
    store: ArtifactStore, data: bytes, fmt: str, ext: str, trusted_only: bool
) -> ArtifactRef:
    info = store.put_bytes(data, ext)
    return ArtifactRef("x", info.sha256, info.uri, fmt, "builtins.int", info.size, trusted_only, {})


def test_crafted_pickle_refused_without_trust(store: ArtifactStore, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    ref = _crafted_ref(store, pickle.dumps(_Payload(sentinel)), "cloudpickle", ".pkl", True)
    with pytest.raises(UnsafeArtifactError):
        load_value(ref, store=store, allow_trusted_only=False)
    assert not sentinel.exists()
    # a ref that lies about being trusted-only is refused by its format
    lying = ArtifactRef.from_dict({**ref.to_dict(), "trusted_only": False})
    with pytest.raises(UnsafeArtifactError):
        load_value(lying, store=store, allow_trusted_only=False)
    assert not sentinel.exists()
    # control: the payload is live, and trusting the producer runs it
    load_value(ref, store=store, allow_trusted_only=True)
    assert sentinel.exists()


@pytest.mark.parametrize("fmt", ["npy", "torch", "json", "parquet", "skops"])
def test_pickle_disguised_as_a_safe_format_runs_nothing(
    fmt: str, store: ArtifactStore, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    payload = _Payload(sentinel)
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, np.array([payload, 1], dtype=object), allow_pickle=True)
        data = buf.getvalue()
    elif fmt == "torch":
        buf = io.BytesIO()
        torch.save({"w": torch.ones(1), "evil": payload}, buf)
        data = buf.getvalue()
    else:
        data = pickle.dumps(payload)
    ref = _crafted_ref(store, data, fmt, {"torch": ".pt"}.get(fmt, "." + fmt), False)
    with pytest.raises((UnsafeArtifactError, SerializationError)):
        load_value(ref, store=store, allow_trusted_only=True)
    assert not sentinel.exists()


@pytest.fixture
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module whose import, and whose objects' construction, leave a marker file."""
    yield from crafted.evil_module(tmp_path, monkeypatch, "evil_mod")


@pytest.mark.parametrize("allow_trusted_only", [True, False])
def test_crafted_skops_refused_and_nothing_runs(
    allow_trusted_only: bool, evil_module: tuple[str, Path], store: ArtifactStore
) -> None:
    module, sentinel = evil_module
    data = crafted.crafted_skops(module)
    ref = _crafted_ref(store, data, "skops", ".skops", False)
    with pytest.raises(UnsafeArtifactError) as err:
        load_value(ref, store=store, allow_trusted_only=allow_trusted_only)
    assert "builtins.eval" in str(err.value) and f"{module}.Evil" in str(err.value)
    assert not sentinel.exists() and module not in sys.modules

    # control: with those types trusted, skops imports the module and builds the object
    import skops.io as sio

    from jupyter_mlplat.tracking.trust import skops_trusted_types

    sio.load(io.BytesIO(data), trusted=skops_trusted_types() + ["builtins.eval", f"{module}.Evil"])
    assert sentinel.read_text() == "imported\nconstructed\n"


def test_skops_custom_class_saved_by_skops_is_refused(
    evil_module: tuple[str, Path], store: ArtifactStore, tmp_path: Path
) -> None:
    """An object of a non-sklearn class dumped with skops directly (not via save_value)."""
    module, sentinel = evil_module
    code = (
        f"import sys, skops.io as sio; sys.path.insert(0, {str(tmp_path)!r}); "
        f"from {module} import Evil; sys.stdout.buffer.write(sio.dumps(Evil()))"
    )
    data = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout
    sentinel.unlink()  # written by the import in the producing process
    ref = _crafted_ref(store, data, "skops", ".skops", False)
    with pytest.raises(UnsafeArtifactError, match=f"{module}.Evil"):
        load_value(ref, store=store)
    assert not sentinel.exists() and module not in sys.modules


# -- import weight ----------------------------------------------------------------------------


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    ).stdout


def test_import_is_light() -> None:
    out = _run(
        "import sys, jupyter_mlplat.pipeline.marshal, jupyter_mlplat.tracking.trust; "
        "print(sorted(m for m in ('numpy','pandas','torch','skops','sklearn','cloudpickle',"
        "'pyarrow','fsspec') if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_saving_a_dataframe_does_not_import_torch_or_sklearn(tmp_path: Path) -> None:
    out = _run(
        "import sys, pandas as pd; "
        "from jupyter_mlplat.store.artifacts import ArtifactStore; "
        "from jupyter_mlplat.pipeline.marshal import save_value, load_value; "
        f"s = ArtifactStore({str(tmp_path / 'a')!r}); "
        "r = save_value(pd.DataFrame({'a': [1]}), name='df', step='s', store=s); "
        "load_value(r, store=s); save_value({'k': [1, 2]}, name='d', step='s', store=s); "
        "print(r.format, sorted(m for m in ('torch','sklearn','skops') if m in sys.modules))"
    )
    assert out.strip() == "parquet []"


_DETERMINISM_SCRIPT = """
import json, sys
import numpy as np, pandas as pd, torch
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from jupyter_mlplat.pipeline.marshal import save_value
from jupyter_mlplat.store.artifacts import ArtifactStore


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x)


store = ArtifactStore(sys.argv[1])
rng = np.random.default_rng(0)
X = pd.DataFrame({"a": rng.normal(size=50), "c": rng.choice(["x", "y"], 50)})
y = (X["a"] > 0).to_numpy().astype(int)
torch.manual_seed(0)
values = {
    "frame": X,
    "array": X["a"].to_numpy(),
    "json": {"k": [1, 2.5, (3, None)]},
    "tensor": torch.arange(6.0),
    "module": Net(),
    "logreg": LogisticRegression().fit(X[["a"]], y),
    "pipeline": make_pipeline(
        ColumnTransformer([("n", StandardScaler(), ["a"]), ("c", OneHotEncoder(), ["c"])]),
        LogisticRegression(),
    ).fit(X, y),
    "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X[["a"]], y),
}
shas = {k: save_value(v, name=k, step="s", store=store).sha256 for k, v in values.items()}
print(json.dumps(shas))
"""


def test_same_value_same_sha_across_processes(tmp_path: Path) -> None:
    """Step versions hash input artifacts: a re-run that recomputes equal outputs must hit."""
    script = tmp_path / "produce.py"
    script.write_text(_DETERMINISM_SCRIPT)

    def produce(i: int, hash_seed: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "PYTHONHASHSEED": hash_seed,
        }
        out = subprocess.run(
            [sys.executable, str(script), str(tmp_path / f"store{i}")],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        return json.loads(out)

    a, b, c = produce(0, "1"), produce(1, "2"), produce(2, "2")
    assert {k: v for k, v in a.items() if k != "module"} == {
        k: v for k, v in b.items() if k != "module"
    }
    # TorchScript writes a module's constants in set order: stable for one hash seed only
    assert b == c


def test_per_name_skops_trust_matches_the_full_list() -> None:
    """refused_skops_types decides a name at a time what skops_trusted_types lists in full."""
    from jupyter_mlplat.tracking import trust

    full = set(trust.skops_trusted_types())
    assert trust.refused_skops_types(full) == []
    assert trust.refused_skops_types(trust.SKOPS_UNCHECKED_CONTENT_TYPES) == sorted(
        trust.SKOPS_UNCHECKED_CONTENT_TYPES)
    assert trust.refused_skops_types(trust.SKOPS_UNCHECKED_CONTENT_TYPES,
                                     include_unchecked_content=True) == []
    for bad in ("builtins.eval", "os.system", "sklearn.base.BaseEstimator",
                "sklearn.utils._testing.MinimalClassifier", "sklearn.linear_model.Nope",
                "sklearn..x", "sklearn.linear_model._base.LinearModel", "numpy.load",
                "sklearn.utils.tests.test_x.Thing"):
        assert trust.refused_skops_types([bad]) == [bad], bad


def test_reading_skops_does_not_import_torch(tmp_path):
    """skops' estimator listing would import torch through sklearn's array-API shims."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from jupyter_mlplat.pipeline.formats.sklearn import skops_io\n"
        "sio = skops_io()\n"
        "assert hasattr(sio, 'load')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "import sklearn.externals.array_api_compat.torch\n"  # still importable afterwards
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
