"""``jupyter mlplat models | model show | compare | lineage | alias`` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.nbbuild import code, notebook, write

from .conftest import Cli

TRAIN = """
rng = np.random.default_rng(seed)
X = rng.normal(size=(400, 2))
y = (X[:, 0] > 0).astype(int)
seg = rng.choice(["u", "v"], 400)
model = LogisticRegression(C=C).fit(X[:300], y[:300])
mlp.set_policy("cli_model", metric="accuracy", min_value=0.7, promote_to="production")
mlp.log_model(model, "cli_model", sample_input=X[:3])
mlp.log_eval(X[300:], y[300:], slices=seg[300:])
mlp.log_slices(y[300:], model.predict(X[300:]), by=seg[300:], name="seg")
mlp.log_metric("acc", float((model.predict(X[300:]) == y[300:]).mean()))
"""


@pytest.fixture
def model_notebook(tmp_path: Path) -> Path:
    return write(tmp_path, "models", notebook(
        code("import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
             "import jupyter_mlplat as mlp", mlplat={"role": "imports"}),
        code("seed = 0\nC = 1.0", tags=["parameters"]),
        code(TRAIN, mlplat={"step": "train"}, id="train-cell"),
    ))


@pytest.mark.timeout(300)
def test_registry_commands(cli: Cli, model_notebook: Path) -> None:
    first = cli.json("run", model_notebook)
    assert [(m["model"], m["version"], m["verdict"]) for m in first["models"]] == [
        ("cli_model", 1, "blessed")]
    text = cli("run", model_notebook, "-p", "C", "0.01").stdout
    assert "cli_model" in text and "v2" in text and "blessed" in text  # the verdict is printed
    second = cli.json("runs")["runs"][0]

    listing = cli.json("models")["models"]
    assert [(m["name"], m["versions"], m["aliases"]) for m in listing] == [
        ("cli_model", 2, {"production": 2})]
    assert "cli_model" in cli("models").stdout

    model = cli.json("model", "show", "cli_model")
    assert [v["version"] for v in model["versions"]] == [1, 2]
    assert [(e["alias"], e["version"]) for e in model["alias_history"]] == [
        ("production", 1), ("production", 2)]
    assert model["policy"]["metric"] == "accuracy"
    shown = cli("model", "show", "cli_model").stdout
    assert "alias history" in shown and "production" in shown

    version = cli.json("model", "show", "cli_model@production")
    assert version["version"] == 2 and version["verdict_status"] == "blessed"
    assert version["verdict"]["baseline_version"] == 1
    assert {s["slice"] for s in version["slices"]} == {"u", "v"}
    assert version["signature"]["inputs"]["shape"][-1] == 2
    text = cli("model", "show", "cli_model@1").stdout
    assert "verdict: blessed" in text and "checks" in text and "signature" in text

    cmp = cli.json("compare", first["id"], second["id"])
    assert "param.C" in cmp["differs"]
    assert cmp["params"]["C"] == {first["id"]: 1.0, second["id"]: 0.01}
    assert "param.C" in cli("compare", first["id"], second["id"]).stdout

    lin = cli.json("lineage", "cli_model@1")
    assert lin["cells"] == ["train-cell"] and lin["step"] == "train"
    assert lin["run"]["id"] == first["id"] and lin["notebook"] == str(model_notebook)
    assert "train-cell" in cli("lineage", "cli_model@1").stdout

    moved = cli.json("alias", "set", "cli_model", "production", "1", "--reason", "rollback")
    assert moved["aliases"] == {"production": 1}
    assert moved["alias_history"][-1]["reason"] == "rollback"
    assert "removed" in cli("alias", "rm", "cli_model", "production").stdout
    assert cli.json("models")["models"][0]["aliases"] == {}


@pytest.mark.timeout(60)
def test_registry_commands_refuse_bad_input(cli: Cli) -> None:
    assert "no model 'nope'" in cli.usage_error("model", "show", "nope")
    assert "not valid" in cli.usage_error("model", "show", "bad name@1")
    assert "positive integer" in cli.usage_error("alias", "set", "m", "production", "x")
    assert "at least two runs" in cli.usage_error("compare", "abc")
    assert "no run" in cli.usage_error("compare", "abc", "def")
    assert cli("models").stdout.startswith("no models yet")
