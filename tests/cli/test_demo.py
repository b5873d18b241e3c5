"""``jupyter mlplat demo``: the quickstart pipeline cold, cached, and after a one-step edit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .conftest import Cli

STEPS = ["load", "split", "featurize_numeric", "featurize_categorical", "train", "evaluate"]


@pytest.mark.timeout(360)
def test_demo_runs_cold_cached_and_edited_in_its_own_folder(cli: Cli, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    doc = cli.json("demo", "--workdir", workdir, timeout=300)
    assert doc["ok"] is True
    assert doc["workdir"] == str(workdir.resolve())
    runs = {r["label"]: r for r in doc["runs"]}
    assert list(runs) == ["cold", "unchanged", "edited"]
    steps = {label: {s["name"]: s["status"] for s in run["steps"]} for label, run in runs.items()}
    assert steps["cold"] == dict.fromkeys(STEPS, "succeeded")
    assert steps["unchanged"] == dict.fromkeys(STEPS, "cached")
    assert steps["edited"] == {"load": "cached", "split": "cached",
                               "featurize_numeric": "succeeded",
                               "featurize_categorical": "cached", "train": "succeeded",
                               "evaluate": "succeeded"}
    assert all(run["status"] == "succeeded" for run in runs.values())
    assert {"accuracy", "roc_auc"} <= set(runs["edited"]["metrics"])
    assert len({run["id"] for run in runs.values()}) == 3
    # the model: registered and blessed on the first run, judged against production after the edit
    models = {label: [(m["model"], m["version"], m["verdict"]) for m in run["models"]]
              for label, run in runs.items()}
    assert models == {"cold": [("churn", 1, "blessed")], "unchanged": [],
                      "edited": [("churn", 2, "blessed")]}
    assert "production v1" in runs["edited"]["models"][0]["summary"]
    assert {s["slice"] for s in runs["cold"]["slices"]} == {"north", "south", "east", "west"}
    # then churn@production is deployed, served by `jupyter mlplat serve`, and called over HTTP
    serving = doc["serving"]
    assert serving["answered_by"] == "churn@2" and len(serving["answer"]["predictions"]) == 1
    assert serving["curl"].startswith("curl -s http://127.0.0.1:") and "Bearer" in serving["curl"]

    # everything lives in the work folder; the user's own store is left alone
    assert {"quickstart.ipynb", "store.db", ".mlplat-demo"} <= {p.name for p in workdir.iterdir()}
    assert "clip outliers" in (workdir / "quickstart.ipynb").read_text()
    assert not Path(os.environ["MLPLAT_STORE_URL"].split("///", 1)[1]).exists()


@pytest.mark.timeout(60)
def test_demo_refuses_a_folder_it_did_not_make(cli: Cli, tmp_path: Path) -> None:
    workdir = tmp_path / "mine"
    workdir.mkdir()
    (workdir / "precious.txt").write_text("keep me\n")
    err = cli.usage_error("demo", "--workdir", workdir, "--json")
    assert f"{workdir} exists and is not a demo folder" in err
    assert "choose another --workdir" in err
    assert [p.name for p in workdir.iterdir()] == ["precious.txt"]
    assert (workdir / "precious.txt").read_text() == "keep me\n"
