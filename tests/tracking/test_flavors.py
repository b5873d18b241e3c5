"""Model flavours: save, load back, predict the same; malicious files refused, nothing run."""

from __future__ import annotations

import io
import json
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from jupyter_mlplat.errors import (
    InvalidSpecError,
    SerializationError,
    SignatureError,
    UnsafeArtifactError,
)
from jupyter_mlplat.pipeline.marshal import ArtifactRef, load_value
from jupyter_mlplat.store.artifacts import ArtifactStore
from jupyter_mlplat.tracking.flavors import (
    LoadedModel,
    SavedModel,
    flavor_for,
    get_flavor,
    load_model_artifact,
    save_model,
)
from tests import crafted


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


def _sample_input(saved: SavedModel, store: ArtifactStore) -> Any:
    assert saved.sample_input is not None
    return load_value(ArtifactRef.from_dict(saved.sample_input), store=store)


def _assert_same(a: Any, b: Any) -> None:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _roundtrip_check(
    model: Any, saved: SavedModel, store: ArtifactStore, *, trusted: bool
) -> LoadedModel:
    """The copy loaded from the store predicts exactly what ``model`` does on the stored
    sample input, and the stored sample output is those predictions."""
    loaded = LoadedModel.load(saved, store=store, trusted=trusted)
    X = _sample_input(saved, store)
    flavor = get_flavor(saved.flavor)
    expected = flavor.predict(model, X, meta=saved.artifact["meta"])
    _assert_same(loaded.predict(X), expected)
    _assert_same(load_value(ArtifactRef.from_dict(saved.sample_output), store=store), expected)
    proba = flavor.predict_proba(model, X, meta=saved.artifact["meta"])
    if proba is None:
        assert loaded.predict_proba(X) is None
    else:
        _assert_same(loaded.predict_proba(X), proba)
    json.dumps(saved.to_dict())  # what the registry stores
    assert SavedModel.from_dict(saved.to_dict()) == saved
    return loaded


# -- registry ----------------------------------------------------------------------------------


class _ProbaOnly:
    """A pyfunc model with only predict_proba (importable, so pickled by reference)."""

    classes_ = np.array(["no", "yes"])

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1 / (1 + np.exp(-np.asarray(X, dtype=float).sum(axis=1)))
        return np.column_stack([1 - p, p])


def test_registry_lookup() -> None:
    assert flavor_for(LogisticRegression()).name == "sklearn"
    assert flavor_for(torch.nn.Linear(2, 1)).name == "torch"
    assert flavor_for(_ProbaOnly()).name == "pyfunc"
    with pytest.raises(InvalidSpecError, match="supported are scikit-learn estimators"):
        flavor_for(object())
    with pytest.raises(InvalidSpecError, match=r"known flavours: \['pyfunc', 'sklearn', 'torch'\]"):
        get_flavor("xgboost")


# -- sklearn -----------------------------------------------------------------------------------


def test_sklearn_logistic_regression_roundtrip(store: ArtifactStore) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    saved = save_model(model, name="lr", sample_input=X[:10], store=store)
    assert saved.flavor == "sklearn"
    art = saved.artifact
    assert art["format"] == "skops" and art["trusted_only"] is False
    assert art["type_name"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert art["meta"]["task"] == "classification"
    assert saved.signature["inputs"] == {"type": "tensor", "dtype": "float64", "shape": [-1, 4]}
    # plain estimators load in the shared (untrusting) serve process too
    loaded = _roundtrip_check(model, saved, store, trusted=False)
    assert isinstance(loaded.model, LogisticRegression)
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 4\], got \[1, 3\]"):
        loaded.predict([[1.0, 2.0, 3.0]])


@pytest.fixture
def customers() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(1)
    n = 80
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "pro", "team"], n),
        }
    )
    return df, ((df["age"] > 45) ^ (df["plan"] == "pro")).astype(int)


def test_sklearn_pipeline_on_dataframe(
    store: ArtifactStore, customers: tuple[pd.DataFrame, pd.Series]
) -> None:
    df, y = customers
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["age", "income"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("rf", RandomForestClassifier(n_estimators=8, random_state=0)),
        ]
    ).fit(df, y)
    saved = save_model(model, name="churn", sample_input=df.head(12), store=store)
    art = saved.artifact
    assert saved.flavor == "sklearn" and art["format"] == "skops"
    # tree arrays are raw node indices skops cannot check: only the owner may load them
    assert art["trusted_only"] is True
    assert art["meta"]["unchecked_types"] == ["sklearn.tree._tree.Tree"]
    assert [c["name"] for c in saved.signature["inputs"]["columns"]] == ["age", "income", "plan"]
    loaded = _roundtrip_check(model, saved, store, trusted=True)
    with pytest.raises(UnsafeArtifactError, match="trusted-only"):
        LoadedModel.load(saved, store=store, trusted=False)
    # an artifact dict that hides the flag is still refused, by the trusted list itself
    lying = {**art, "trusted_only": False, "meta": {**art["meta"], "trusted_only": False}}
    with pytest.raises(UnsafeArtifactError, match=r"sklearn\.tree\._tree\.Tree"):
        load_model_artifact(lying, "sklearn", store=store, trusted=False)
    # a JSON request, columns in another order plus one the model does not use
    records = [{"plan": "pro", "income": 51.5, "age": 33, "note": "x"}]
    same_row = pd.DataFrame({"age": [33], "income": [51.5], "plan": ["pro"]})
    _assert_same(loaded.predict(records), model.predict(same_row))
    with pytest.raises(SignatureError, match=r"missing columns: \['income'\]"):
        loaded.predict([{"plan": "pro", "age": 33}])


class _Doubler(BaseEstimator, TransformerMixin):
    """A custom transformer: skops cannot load it with the trusted list."""

    def fit(self, X: Any, y: Any = None) -> _Doubler:
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X) * 2


def test_sklearn_custom_step_falls_back_to_pyfunc(store: ArtifactStore) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    model = Pipeline([("double", _Doubler()), ("lr", LogisticRegression())]).fit(X, y)
    assert flavor_for(model).name == "sklearn"
    saved = save_model(model, name="custom", sample_input=X[:5], store=store)
    assert saved.flavor == "pyfunc"
    art = saved.artifact
    assert art["format"] == "cloudpickle" and art["trusted_only"] is True
    assert "outside the project's trusted list" in art["meta"]["fallback_reason"]
    assert "_Doubler" in art["meta"]["fallback_reason"]
    _roundtrip_check(model, saved, store, trusted=True)
    with pytest.raises(UnsafeArtifactError):
        LoadedModel.load(saved, store=store, trusted=False)


# -- torch -------------------------------------------------------------------------------------


class _MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Unscriptable(torch.nn.Module):
    """``*args`` is beyond TorchScript; tracing is exact (no data-dependent control flow)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x, *args):  # noqa: ANN001, ANN002, ANN201 - annotations would not help
        return torch.tanh(self.lin(x)) * 3


class _DataDependent(torch.nn.Module):
    """Takes a branch on the batch's values: a trace freezes whichever branch the sample took."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x, *args):  # noqa: ANN001, ANN002, ANN201
        if x.sum() > 0:
            return self.lin(x)
        return -self.lin(x)


class _ExportOnly(_Unscriptable):
    """Refuses to be traced, so the last way, torch.export, is used."""

    def forward(self, x, *args):  # noqa: ANN001, ANN002, ANN201
        if torch.jit.is_tracing():
            raise RuntimeError("this module cannot be traced")
        return self.lin(x) + 1


def test_torch_mlp_classifier_scripted(store: ArtifactStore) -> None:
    torch.manual_seed(0)
    model = _MLP()  # left in training mode, as in a notebook: predictions use eval mode
    X = np.random.default_rng(3).normal(size=(16, 4)).astype(np.float32)
    saved = save_model(model, name="mlp", sample_input=X, store=store)
    meta = saved.artifact["meta"]
    assert saved.flavor == "torch" and saved.artifact["format"] == "torchscript"
    assert meta["method"] == "script" and meta["task"] == "classification"
    # TorchScript may call operators that read files (torch.from_file): its owner's only
    assert saved.artifact["trusted_only"] is True
    with pytest.raises(UnsafeArtifactError, match="trusted-only"):
        LoadedModel.load(saved, store=store, trusted=False)
    assert model.training  # the caller's mode is left alone
    assert saved.signature["outputs"] == {"type": "tensor", "dtype": "int64", "shape": [-1]}
    loaded = _roundtrip_check(model, saved, store, trusted=True)
    assert isinstance(loaded.model, torch.jit.ScriptModule)
    proba = loaded.predict_proba(X)
    assert proba.shape == (16, 3) and np.allclose(proba.sum(axis=1), 1)
    _assert_same(loaded.predict(X), proba.argmax(axis=1))
    # requests as lists of rows work; the wrong width is refused with the expected shape
    assert loaded.predict(X[:2].tolist()).shape == (2,)
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 4\], got \[2, 5\]"):
        loaded.predict(np.zeros((2, 5)))


def test_torch_traced_when_scripting_fails(store: ArtifactStore) -> None:
    torch.manual_seed(1)
    model = _Unscriptable()
    X = torch.randn(10, 4)
    saved = save_model(model, name="reg", sample_input=X, store=store)
    meta = saved.artifact["meta"]
    assert meta["method"] == "trace" and saved.artifact["format"] == "torchscript"
    assert meta["task"] == "regression" and meta["input_dtype"] == "float32"
    loaded = _roundtrip_check(model, saved, store, trusted=True)
    assert loaded.predict(X).shape == (10,)  # one output column: squeezed
    assert loaded.predict_proba(X) is None


def test_torch_export_when_scripting_and_tracing_fail(store: ArtifactStore) -> None:
    torch.manual_seed(2)
    model = _ExportOnly()
    X = torch.randn(1, 4)  # a batch of one must still export with a dynamic batch size
    saved = save_model(model, name="exported", sample_input=X, store=store, task="regression")
    meta = saved.artifact["meta"]
    assert meta["method"] == "export" and saved.artifact["format"] == "torch_export"
    # torch.export.load unpickles with weights_only=False
    assert saved.artifact["trusted_only"] is True
    loaded = _roundtrip_check(model, saved, store, trusted=True)
    batch = torch.randn(7, 4)
    np.testing.assert_allclose(
        loaded.predict(batch), model(batch).detach().numpy()[:, 0], rtol=1e-6
    )
    with pytest.raises(UnsafeArtifactError, match="trusted-only"):
        load_model_artifact(saved.artifact, "torch", store=store, trusted=False)


def test_torch_trace_mismatch_caught_at_save(store: ArtifactStore) -> None:
    torch.manual_seed(3)
    model = _DataDependent()
    # the batch sums to > 0, but row 1 alone does not: the traced copy gets it wrong
    X = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, -1.0, -1.0, -1.0], [0.5, 0.5, 0.5, 0.5]])
    with pytest.raises(SerializationError) as err:
        save_model(model, name="branchy", sample_input=X, store=store)
    msg = str(err.value)
    assert "does not reproduce it on the sample input" in msg
    assert "outputs differ on row 1 alone" in msg
    assert "data-dependent control flow" in msg


def test_torch_needs_sample_input_when_not_scriptable(store: ArtifactStore) -> None:
    with pytest.raises(SerializationError, match="need a sample input"):
        save_model(_Unscriptable(), name="x", store=store)
    saved = save_model(_MLP(), name="nosample", store=store)
    assert saved.signature == {} and saved.sample_input is None
    loaded = LoadedModel.load(saved, store=store, trusted=True)
    assert loaded.predict(np.zeros((2, 4))).shape == (2,)


# -- pyfunc ------------------------------------------------------------------------------------


def test_pyfunc_roundtrip_and_trust(store: ArtifactStore) -> None:
    model = _ProbaOnly()
    X = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, -0.1]])
    saved = save_model(model, name="proba", sample_input=X, store=store)
    assert saved.flavor == "pyfunc"
    assert saved.artifact["format"] == "cloudpickle" and saved.artifact["trusted_only"] is True
    loaded = _roundtrip_check(model, saved, store, trusted=True)
    assert loaded.predict(X).tolist() == ["yes", "no", "no"]
    with pytest.raises(UnsafeArtifactError, match="trusted-only"):
        LoadedModel.load(saved, store=store, trusted=False)


def test_explicit_flavor_must_match(store: ArtifactStore) -> None:
    with pytest.raises(InvalidSpecError, match="is not a 'torch' model"):
        save_model(_ProbaOnly(), name="x", store=store, flavor="torch")
    with pytest.raises(InvalidSpecError, match="task must be one of"):
        save_model(_ProbaOnly(), name="x", store=store, task="ranking")


# -- malicious files: refused, nothing runs ------------------------------------------------------


class _Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _artifact(store: ArtifactStore, data: bytes, fmt: str, ext: str, **extra: Any) -> dict:
    info = store.put_bytes(data, ext)
    return {
        "name": "evil",
        "sha256": info.sha256,
        "uri": info.uri,
        "format": fmt,
        "type_name": "sklearn.linear_model._logistic.LogisticRegression",
        "size": info.size,
        "trusted_only": False,
        "meta": {},
        **extra,
    }


@pytest.fixture
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A module whose import, and whose objects' construction, leave a marker file."""
    yield from crafted.evil_module(tmp_path, monkeypatch, "evil_flavor_mod")


@pytest.mark.parametrize("trusted", [True, False])
def test_crafted_skops_refused_and_nothing_runs(
    trusted: bool, evil_module: Any, store: ArtifactStore
) -> None:
    module, marker = evil_module
    data = crafted.crafted_skops(module, ("os", "system"))
    art = _artifact(store, data, "skops", ".skops")
    with pytest.raises(UnsafeArtifactError) as err:
        load_model_artifact(art, "sklearn", store=store, trusted=trusted)
    assert "os.system" in str(err.value) and f"{module}.Evil" in str(err.value)
    assert not marker.exists() and module not in sys.modules

    # control: the payload is live; with its types trusted, skops imports and builds it
    import skops.io as sio

    from jupyter_mlplat.tracking.trust import skops_trusted_types

    sio.load(io.BytesIO(data), trusted=skops_trusted_types() + ["os.system", f"{module}.Evil"])
    assert marker.read_text() == "imported\nconstructed\n"


def test_crafted_pickle_as_pyfunc_refused(store: ArtifactStore, tmp_path: Path) -> None:
    marker = tmp_path / "pickle-pwned"
    data = pickle.dumps(_Payload(marker))
    art = _artifact(store, data, "cloudpickle", ".pkl", trusted_only=True)
    with pytest.raises(UnsafeArtifactError, match="nothing was loaded"):
        load_model_artifact(art, "pyfunc", store=store, trusted=False)
    # an artifact that lies about being trusted-only is refused by its format and flavour
    with pytest.raises(UnsafeArtifactError):
        load_model_artifact({**art, "trusted_only": False}, "pyfunc", store=store, trusted=False)
    # ... and one that claims a safe flavour is refused for the format
    with pytest.raises(SerializationError, match="not one the 'sklearn' flavour reads"):
        load_model_artifact(art, "sklearn", store=store, trusted=True)
    # pickle bytes disguised as a skops file never reach pickle
    disguised = _artifact(store, data, "skops", ".skops")
    with pytest.raises((UnsafeArtifactError, SerializationError)):
        load_model_artifact(disguised, "sklearn", store=store, trusted=True)
    assert not marker.exists()
    # control: the payload is live, and trusting its producer runs it
    load_model_artifact(art, "pyfunc", store=store, trusted=True)
    assert marker.exists()


def _fake_torchscript(payload: Any) -> bytes:
    """A zip laid out like a TorchScript archive whose pickles hold the payload."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/code/__torch__.py", "")
        z.writestr("archive/constants.pkl", pickle.dumps((payload,), protocol=2))
        z.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        z.writestr("archive/version", "3")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["pickle", "torch_save", "fake_archive", "export_untrusted"])
def test_crafted_pickle_given_to_torch_refused(
    kind: str, store: ArtifactStore, tmp_path: Path
) -> None:
    marker = tmp_path / "torch-pwned"
    payload = _Payload(marker)
    fmt, ext = "torchscript", ".pt"
    if kind == "pickle":
        data = pickle.dumps(payload)
    elif kind == "torch_save":
        buf = io.BytesIO()
        torch.save({"w": torch.ones(1), "evil": payload}, buf)
        data = buf.getvalue()
    elif kind == "fake_archive":
        data = _fake_torchscript(payload)
    else:
        data, fmt, ext = pickle.dumps(payload), "torch_export", ".pt2"
    art = _artifact(store, data, fmt, ext)
    with pytest.raises((UnsafeArtifactError, SerializationError)) as err:
        load_model_artifact(art, "torch", store=store, trusted=kind == "fake_archive")
    if kind != "fake_archive":  # that one is refused by torch's own TorchScript unpickler
        assert isinstance(err.value, UnsafeArtifactError)
    assert "nothing was loaded" in str(err.value) or kind == "fake_archive"
    assert not marker.exists()
