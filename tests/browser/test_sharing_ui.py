"""Projects and sharing in Chromium: another user ("carol") shares models, an endpoint and a
pipeline with her project "carol/risk", which the lab's owner is a member of; the Shared tab
lists them, shows the line that loads the safe model and says why the other cannot be loaded,
what the endpoint serves and its revisions, and the pipeline's finished run with its metric.
Project names are per owner: the owner creates a project "risk" of their own through the "New
project" dialog, both are listed apart by their keys (OWNER/NAME), one of the owner's models is
shared with theirs from the Models tab ("Share…"), and the owner leaves carol's. The REST calls
the page makes are checked to name projects by owner and name.

The data is prepared through the library, in the lab's own store. Screenshots go to
``test-results/browser/sharing-ui/`` (or ``$MLPLAT_TEST_RESULTS/browser/sharing-ui/``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from jupyter_mlplat.store import open_artifacts
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.flavors import save_model
from jupyter_mlplat.tracking.registry import ModelRegistry

from .conftest import LabPage, LabServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
PROJECT = "risk"          # carol's project, the lab's owner a member
NEW_PROJECT = PROJECT     # the owner's own, made through the dialog: names are per owner
CAROLS = f"carol/{PROJECT}"
OWN_MODEL = "ridge"       # the lab's owner's model, shared from the Models tab
ENDPOINT = "scoring"      # carol's endpoint serving "scorer" v1
PIPELINE = "train"        # carol's pipeline, one finished run with a metric


def results_dir(name: str) -> Path:
    """An emptied folder for this test's screenshots, next to the other test results."""
    base = Path(os.environ.get("MLPLAT_TEST_RESULTS", REPO / "test-results"))
    folder = base / "browser" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def register(store: Store, artifacts_url: str, name: str, model: object, X: np.ndarray) -> None:
    """Log ``model`` as version 1 of ``name`` for the store's owner (as ``mlp.log_model`` does
    outside a run)."""
    registry = ModelRegistry(store, open_artifacts(artifacts_url))
    saved = save_model(model, name=name, sample_input=X[:3], store=registry.artifacts)
    registry.register(name, asdict(saved), run_id=None)


@pytest.fixture
def shared_data(lab_server: LabServer) -> str:
    """In the lab's store: carol's models "scorer" (skops, loadable by others) and "tree"
    (trusted-only), her endpoint "scoring" (serving scorer v1) and her pipeline "train" (one
    succeeded run with the metric auc=0.875), all shared with her project "risk", whose member
    the lab's owner is; and a model of the lab's owner. Returns the owner's name."""
    status, body, _ = lab_server.get("/mlplat/api/version")
    assert status == 200, body
    owner = json.loads(body)["owner"]
    url, artifacts = lab_server.env["MLPLAT_STORE_URL"], lab_server.env["MLPLAT_ARTIFACTS_URL"]
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    carol = Store(url, "carol")
    try:
        register(carol, artifacts, "scorer", LogisticRegression().fit(X, y), X)
        ModelRegistry(carol, open_artifacts(artifacts)).set_alias("scorer", "production", 1)
        register(carol, artifacts, "tree", DecisionTreeClassifier(max_depth=2).fit(X, y), X)
        carol.create_project(PROJECT, description="credit risk")
        carol.add_project_member(PROJECT, owner)
        carol.share("model", "scorer", PROJECT)
        carol.share("model", "tree", PROJECT)
        carol.ensure_endpoint(ENDPOINT)
        carol.set_endpoint_token(ENDPOINT, "e" * 64)
        carol.add_endpoint_revision(ENDPOINT, action="deploy", actor="carol",
                                    routes=[{"model": "scorer", "version": 1, "weight": 100}])
        carol.share("endpoint", ENDPOINT, PROJECT)
        pipeline = carol.pipeline_id(PIPELINE, "work/train.ipynb")
        run = carol.create_run(pipeline_id=pipeline, pipeline_version="v1",
                               notebook_path="work/train.ipynb", parameters={"C": 1.0},
                               options={}, steps=["fit"])
        carol.log_metrics(run, None, [{"name": "auc", "value": 0.5},
                                      {"name": "auc", "value": 0.875}])
        carol.finish_run(run, "succeeded")
        carol.share("pipeline", PIPELINE, PROJECT)
    finally:
        carol.close()
    mine = Store(url, owner)
    try:
        register(mine, artifacts, OWN_MODEL, LogisticRegression(C=0.5).fit(X, y), X)
    finally:
        mine.close()
    return owner


class SharingPage:
    """The ML Platform sidebar's Shared and Models tabs: the selectors this test needs."""

    SIDEBAR = "#jp-mlplat-sidebar"
    SIDE_TAB = '.lm-TabBar-tab[data-id="jp-mlplat-sidebar"]'
    SHARED_MODEL = f"{SIDEBAR} section.jp-mlplat-shared-model"
    SHARED_ENDPOINT = f"{SIDEBAR} section.jp-mlplat-shared-endpoint"
    SHARED_PIPELINE = f"{SIDEBAR} section.jp-mlplat-shared-pipeline"
    OUTCOME = f"{SIDEBAR} .jp-mlplat-outcome"

    def __init__(self, lab: LabPage) -> None:
        self.lab = lab
        self.page = lab.page

    def open_tab(self, tab: str) -> None:
        if not self.page.locator(self.SIDEBAR).is_visible():
            self.page.locator(self.SIDE_TAB).click()
            self.page.wait_for_selector(self.SIDEBAR, state="visible")
        self.lab.sidebar_tab(tab)

    def shared_row(self, kind: str, owner: str, name: str):
        return self.page.locator(f'{self.SIDEBAR} ul[aria-label="shared with you"] '
                                 f'li[data-kind="{kind}"][data-owner="{owner}"][data-name="{name}"]')

    def project_row(self, key: str):
        """The row of project ``key`` (OWNER/NAME) in "Your projects"."""
        return self.page.locator(f'{self.SIDEBAR} ul[aria-label="projects"] '
                                 f'li[data-project="{key}"]')

    def project_detail(self, key: str):
        return self.page.locator(f'{self.SIDEBAR} section[aria-label="project {key}"]')

    def button(self, label: str, within: str = SIDEBAR):
        return self.page.locator(f"{within} button", has_text=label)

    def dialog_field(self, name: str):
        return self.page.locator(f'{self.lab.DIALOG} [name="{name}"]')

    def outcome(self, within: str = SIDEBAR) -> str:
        locator = self.page.locator(f"{within} .jp-mlplat-outcome")
        locator.wait_for()
        return locator.inner_text()


def segment(text: str) -> str:
    """``text`` as one path segment, encoded as the client sends it (``encodeURIComponent``)."""
    return quote(text, safe="!'()*-._~")


class ApiCalls:
    """The REST calls the page makes to the server extension: method, path (as sent, encoded,
    without ``/mlplat/api/``) and body."""

    PREFIX = "/mlplat/api/"

    def __init__(self, page) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        page.on("request", self._seen)

    def _seen(self, request) -> None:
        path = urlsplit(request.url).path
        if path.startswith(self.PREFIX):
            self.calls.append((request.method, path[len(self.PREFIX):], request.post_data))

    def to(self, method: str, path: str) -> list[str | None]:
        """The bodies of the calls ``method path`` made so far."""
        return [body for m, p, body in self.calls if (m, p) == (method, path)]


def test_shared_tab_new_project_and_share(lab_page: LabPage, lab_server: LabServer,
                                          shared_data: str) -> None:
    owner = shared_data
    mine_key = f"{owner}/{NEW_PROJECT}"
    shots = results_dir("sharing-ui")
    ui = SharingPage(lab_page)
    page = lab_page.page
    api = ApiCalls(page)
    page.set_viewport_size({"width": 1400, "height": 1000})
    stage = 0

    def shot(name: str) -> None:
        nonlocal stage
        stage += 1
        print(f"screenshot: {lab_page.screenshot(shots / f'{stage:02d}-{name}.png')}")

    try:
        # 1. The Shared tab: carol's project (the owner a member) and what she shared with it,
        # each item naming the project by its key.
        lab_page.open()
        ui.open_tab("shared")
        row = ui.project_row(CAROLS)
        row.wait_for()
        assert row.get_attribute("data-role") == "member"
        assert (row.get_attribute("data-owner"), row.get_attribute("data-name")) == ("carol",
                                                                                     PROJECT)
        assert "by carol" in row.inner_text()
        scorer = ui.shared_row("model", "carol", "scorer")
        scorer.wait_for()
        assert f"project {CAROLS}" in scorer.inner_text()
        assert scorer.get_attribute("data-project") == CAROLS
        ui.shared_row("model", "carol", "tree").wait_for()

        # Her project, opened: read by owner and name; a member may leave, not change it.
        row.click()
        carols = ui.project_detail(CAROLS)
        carols.wait_for()
        carols.locator(f'[data-member="{owner}"]').wait_for()
        assert api.to("GET", f"projects/carol/{PROJECT}") == [None]
        assert ui.button("Leave project", f'{ui.SIDEBAR} section[aria-label="project {CAROLS}"]'
                         ).count() == 1
        assert carols.locator("button", has_text="Add member").count() == 0
        assert carols.locator("button", has_text="Delete project").count() == 0
        assert "model carol/scorer" in carols.inner_text()
        shot("carols-project")
        row.click()  # closes it
        carols.wait_for(state="detached")

        # 2. carol's skops model: its version, alias, format and the line that loads it.
        scorer.click()
        detail = page.locator(f'{ui.SHARED_MODEL}[data-name="scorer"]')
        detail.wait_for()
        assert detail.get_attribute("data-loadable") == "true"
        snippet = detail.locator(".jp-mlplat-copy pre").inner_text()
        assert 'mlp.load_model("carol/scorer@1")' in snippet, snippet
        assert "format skops" in detail.inner_text()
        assert "production→v1" in detail.inner_text()
        shot("shared-model")

        # 3. Her tree model is trusted-only: a clear note, no load line.
        ui.shared_row("model", "carol", "tree").click()
        tree = page.locator(f'{ui.SHARED_MODEL}[data-name="tree"]')
        tree.wait_for()
        assert tree.get_attribute("data-loadable") == "false"
        assert "Not loadable outside carol's own processes" in tree.inner_text()
        assert tree.locator(".jp-mlplat-copy").count() == 0
        shot("not-loadable")

        # 4. Her endpoint: the route it serves now (model version, weight), needs a token (never
        # shown), and its revision with who made it.
        ui.shared_row("endpoint", "carol", ENDPOINT).click()
        endpoint = page.locator(f'{ui.SHARED_ENDPOINT}[data-name="{ENDPOINT}"]')
        endpoint.wait_for()
        route = endpoint.locator('table[aria-label="routes"] tr[data-route="scorer@1"]')
        route.wait_for()
        assert route.locator("td").all_inner_texts() == ["scorer@1", "100%"]
        assert endpoint.get_attribute("data-public") == "false"
        assert "needs a token" in endpoint.inner_text()
        assert "e" * 64 not in endpoint.inner_text()
        revision = endpoint.locator('table[aria-label="revisions"] tr[data-revision="1"]')
        assert "deploy" in revision.inner_text() and "carol" in revision.inner_text()
        shot("shared-endpoint")

        # 5. Her pipeline: its notebook and the finished run with the last value of its metric.
        ui.shared_row("pipeline", "carol", PIPELINE).click()
        pipeline = page.locator(f'{ui.SHARED_PIPELINE}[data-name="{PIPELINE}"]')
        pipeline.wait_for()
        assert "work/train.ipynb" in pipeline.inner_text()
        run = pipeline.locator('table[aria-label="runs"] tr[data-status="succeeded"]')
        run.wait_for()
        assert run.locator('[data-metric="auc"]').inner_text() == "auc 0.875"
        assert "C=1" in run.inner_text()
        assert pipeline.locator('table[aria-label="runs"] tbody tr').count() == 1
        shot("shared-pipeline")

        # 6. "New project" named like carol's: the dialog asks name and members; the owner's
        # project is listed beside hers, each by its key.
        ui.button("New project").click()
        ui.dialog_field("project-name").fill(NEW_PROJECT)
        ui.dialog_field("project-members").fill("dave, erin")
        ui.dialog_field("project-description").fill("made in the browser")
        shot("new-project-dialog")
        lab_page.dialog_accept()
        assert ui.outcome() == f"Created project {mine_key} with dave, erin."
        created = ui.project_row(mine_key)
        created.wait_for()
        assert created.get_attribute("data-role") == "owner"
        assert "yours" in created.inner_text()
        assert ui.project_row(CAROLS).get_attribute("data-role") == "member"
        ui.project_detail(mine_key).locator('[data-member="erin"]').wait_for()
        assert json.loads(api.to("POST", "projects")[0] or "{}") == {
            "name": NEW_PROJECT, "description": "made in the browser",
            "members": ["dave", "erin"]}  # one request: the project and its members together
        assert not [c for c in api.calls if c[0] == "PUT" and "/members/" in c[1]], api.calls
        status, body, _ = lab_server.get(
            f"/mlplat/api/projects/{segment(owner)}/{NEW_PROJECT}")
        info = json.loads(body)
        assert status == 200, body
        assert (info["key"], info["owner"], info["members"]) == (mine_key, owner,
                                                                 ["dave", "erin"])
        assert info["description"] == "made in the browser"
        status, body, _ = lab_server.get(f"/mlplat/api/projects/carol/{PROJECT}")
        assert status == 200 and json.loads(body)["members"] == [owner], body
        shot("project-created")

        # 7. Models tab: "Share…" on the owner's model, with the new project.
        ui.open_tab("models")
        page.locator(f'{ui.SIDEBAR} li[data-model="{OWN_MODEL}"]').click()
        share = f'{ui.SIDEBAR} .jp-mlplat-share[data-name="{OWN_MODEL}"]'
        page.locator(f"{share} .jp-mlplat-share-state", has_text="Private").wait_for()
        ui.button("Share…", share).click()
        ui.dialog_field("share-project").wait_for()
        choices = ui.dialog_field("share-project").locator("option")
        assert sorted(zip(choices.evaluate_all("els => els.map(e => e.value)"),
                          choices.all_inner_texts())) == sorted([
            ("", "Private (not shared)"),
            (CAROLS, f"project {CAROLS} (by carol, 1 member)"),
            (mine_key, f"project {mine_key} (yours, 2 members)")])
        ui.dialog_field("share-project").select_option(mine_key)
        shot("share-dialog")
        lab_page.dialog_accept()
        assert ui.outcome(share) == (f"Shared model {OWN_MODEL} with project {mine_key}: its "
                                     "members may read it, never change it.")
        page.locator(f"{share} .jp-mlplat-share-state",
                     has_text=f"Shared with project {mine_key}").wait_for()
        assert [json.loads(body or "{}") for body in api.to("PUT", f"shares/model/{OWN_MODEL}")
                ] == [{"project": mine_key}]
        shot("shared-from-models")

        # What the UI did is what the store holds: dave reads the owner's model, through the
        # owner's "risk"; carol, whose "risk" has the same name, does not.
        url = lab_server.env["MLPLAT_STORE_URL"]
        for user, expected in (("dave", [("model", owner, OWN_MODEL, mine_key)]),
                               ("carol", [])):
            store = Store(url, user)
            try:
                assert [(s["kind"], s["owner"], s["name"], s["project"])
                        for s in store.shared_with_me()] == expected, user
            finally:
                store.close()

        # 8. The Shared tab lists it under "Shared by you".
        ui.open_tab("shared")
        mine = page.locator(f'{ui.SIDEBAR} ul[aria-label="shared by you"] '
                            f'li[data-name="{OWN_MODEL}"][data-project="{mine_key}"]')
        mine.wait_for()
        assert f"with project {mine_key}" in mine.inner_text()
        shot("shared-by-you")

        # 9. "Leave project" on carol's: after the confirmation the owner removes themselves;
        # her project and what she shared with it are gone from the tab, the owner's stays.
        ui.project_row(CAROLS).click()
        carols = ui.project_detail(CAROLS)
        carols.wait_for()
        carols.locator("button", has_text="Leave project").click()
        page.wait_for_selector(lab_page.DIALOG)
        assert f"Leave project {CAROLS}?" in page.locator(lab_page.DIALOG).inner_text()
        shot("leave-dialog")
        lab_page.dialog_accept()
        page.locator(f"{ui.SIDEBAR} .jp-mlplat-outcome",
                     has_text=f"You left project {CAROLS}.").wait_for()
        ui.project_row(CAROLS).wait_for(state="detached")
        ui.shared_row("model", "carol", "scorer").wait_for(state="detached")
        assert ui.project_row(mine_key).count() == 1
        leave = f"projects/carol/{PROJECT}/members/{segment(owner)}"
        assert len(api.to("DELETE", leave)) == 1, api.calls
        status, body, _ = lab_server.get(f"/mlplat/api/projects/carol/{PROJECT}")
        assert status == 404, body
        carol = Store(url, "carol")
        try:
            assert carol.project(PROJECT)["members"] == []
        finally:
            carol.close()
        shot("left")
    except BaseException:
        shot("failure")
        raise
    assert [error for error in lab_page.page_errors if not third_party(error)] == []


def third_party(error: str) -> bool:
    """A known fault of another extension (ipywidgets' manager), not of this one."""
    return "@jupyter-widgets/jupyterlab-manager" in error
