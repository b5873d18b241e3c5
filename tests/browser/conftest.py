"""Browser-test fixtures: a real ``jupyter lab`` in private folders, driven by Debian Chromium.

Run in their own pytest invocation (pytest-jupyter's event loop and Playwright's sync API do not
share a session): ``pytest tests/browser -m browser -p no:pytest_jupyter.jupyter_server``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Debian's Chromium; Playwright must never download a browser of its own.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
#: Seconds a cold ``jupyter lab`` may take to answer.
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_command() -> list[str]:
    """``jupyter lab`` from the venv that runs pytest."""
    script = Path(sys.executable).with_name("jupyter-lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyterlab"]


def isolated_env(home: Path) -> dict[str, str]:
    """The environment of the lab: private config, data, runtime, settings and MLPLAT_* folders.

    Only the *user* folders move: the venv's ``share/jupyter`` (app dir, labextensions) and
    ``etc/jupyter`` (server-extension enablement) stay on the search path.
    """
    dirs = {name: home / name for name in ("config", "data", "runtime", "user-settings",
                                           "workspaces", "mlplat")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    # The news prompt (and its toast) would cover screenshots and fetch from the internet.
    notification = dirs["user-settings"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JUPYTER_TOKEN")}
    env.update({
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["user-settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "MLPLAT_STORE_URL": f"sqlite:///{dirs['mlplat'] / 'mlplat.db'}",
        "MLPLAT_ARTIFACTS_URL": str(dirs["mlplat"] / "artifacts"),
        "MLPLAT_LOGS_DIR": str(dirs["mlplat"] / "logs"),
    })
    return env


@dataclass
class LabServer:
    """A running ``jupyter lab``: where it listens, its token, environment and log."""

    port: int
    token: str
    env: dict[str, str]
    log: Path
    root_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, *, token: bool = True) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}" if token else self.base_url + path

    def get(self, path: str, *, token: bool = True, timeout: float = 5) -> tuple[int, bytes, str]:
        """``GET path`` (token in the Authorization header): status, body and content type."""
        headers = {"Authorization": f"token {self.token}"} if token else {}
        request = urllib.request.Request(self.base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers.get("Content-Type", "")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until an authenticated ``/api/status`` answers 200; fails early if the lab exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited {self.proc.returncode}\n{self.log_tail()}")
            try:
                if self.get("/api/status", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"jupyter lab did not answer in {timeout:.0f} s\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-home")


@pytest.fixture(scope="module")
def lab_env(lab_home: Path) -> dict[str, str]:
    return isolated_env(lab_home)


@pytest.fixture(scope="module")
def lab_server(lab_home: Path, lab_env: dict[str, str]) -> Iterator[LabServer]:
    """``jupyter lab`` on a free 127.0.0.1 port with a token, stopped (terminate, kill) after."""
    root_dir = lab_home / "notebooks"
    root_dir.mkdir()
    server = LabServer(port=free_port(), token=secrets.token_hex(16), env=lab_env,
                       log=lab_home / "jupyter-lab.log", root_dir=root_dir)
    args = [
        *lab_command(), "--no-browser",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={server.port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={server.token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with server.log.open("wb") as log:
        server.proc = subprocess.Popen(args, env=lab_env, cwd=root_dir, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class LabPage:
    """JupyterLab in a Playwright page. The one place that knows the shell's selectors."""

    SPLASH = "#jupyterlab-splash"
    SHELL = "#main"
    MAIN_DOCK = "#jp-main-dock-panel"
    LAUNCHER = ".jp-Launcher"
    TOAST = ".Toastify__toast"

    def __init__(self, page, server: LabServer) -> None:  # page: playwright.sync_api.Page
        self.page = page
        self.server = server
        self.console: list[tuple[str, str]] = []  # (type, text), in arrival order
        self.page_errors: list[str] = []
        page.on("console", lambda msg: self.console.append((msg.type, msg.text)))
        # The message, then where it was thrown (which extension's bundle).
        page.on("pageerror", lambda err: self.page_errors.append(
            f"{err}\n{getattr(err, 'stack', None) or ''}".strip()))

    def open(self, timeout_ms: float = 30_000) -> None:
        """Load /lab with the token and wait for the shell: main dock shown, splash gone."""
        self.page.goto(self.server.url("/lab"), wait_until="domcontentloaded")
        self.page.wait_for_selector(self.MAIN_DOCK, state="visible", timeout=timeout_ms)
        self.page.wait_for_selector(self.SPLASH, state="detached", timeout=timeout_ms)

    def wait_for_console(self, pattern: str, timeout_ms: float = 15_000) -> str:
        """The first console message matching the regex ``pattern``, waiting for it if needed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            for _, text in self.console:
                if regex.search(text):
                    return text
            if time.monotonic() > deadline:
                shown = "\n".join(f"  [{kind}] {text[:300]}" for kind, text in self.console)
                raise AssertionError(f"no console message matches {pattern!r}; seen:\n{shown}")
            self.page.wait_for_timeout(100)  # lets Playwright dispatch console events

    def console_errors(self, prefix: str) -> list[str]:
        return [text for kind, text in self.console if kind == "error" and text.startswith(prefix)]

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path))
        return path

    # -- notebooks ----------------------------------------------------------------------------

    NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    CELL = ".jp-Notebook .jp-Cell"
    DIALOG = ".jp-Dialog"
    DIALOG_ACCEPT = ".jp-Dialog .jp-Dialog-button.jp-mod-accept"

    def open_notebook(self, path: str, timeout_ms: float = 60_000) -> None:
        """Open ``path`` (relative to the server root) in JupyterLab and wait for its cells."""
        self.page.goto(self.server.url(f"/lab/tree/{path}"), wait_until="domcontentloaded")
        self.page.wait_for_selector(self.SPLASH, state="detached", timeout=timeout_ms)
        self.page.wait_for_selector(f"{self.NOTEBOOK} {self.CELL}", timeout=timeout_ms)

    def cell(self, index: int):
        return self.page.locator(f"{self.NOTEBOOK} {self.CELL}").nth(index)

    def notebook_button(self, command: str):
        """A button of the current notebook's toolbar, by the command it runs."""
        return self.page.locator(f'{self.NOTEBOOK} .jp-NotebookPanel-toolbar [data-command="{command}"]')

    def dialog_accept(self) -> None:
        self.page.locator(self.DIALOG_ACCEPT).click()
        self.page.wait_for_selector(self.DIALOG, state="detached")

    # -- jupyter-mlplat -----------------------------------------------------------------------

    SIDEBAR = "#jp-mlplat-sidebar"
    BADGE = ".jp-mlplat-badge"
    CELL_ERROR = ".jp-mlplat-cellError"
    PROMOTE = '.jp-cell-toolbar [data-command="mlplat:promote-cell"]'
    RUN_PIPELINE = "mlplat:run-pipeline"
    DEPLOY_MODEL = "mlplat:deploy-model"
    RUN_DETAIL = "#jp-mlplat-sidebar section.jp-mlplat-detail[data-run]"
    DEPLOY_RESULT = ".jp-mlplat-deploy-result"

    def promote_cell(self, index: int, name: str) -> None:
        """Select a cell, press its toolbar's "Promote to pipeline step", name the step, save."""
        cell = self.cell(index)
        cell.locator(".jp-InputPrompt").click()
        cell.locator(self.PROMOTE).click()
        self.page.wait_for_selector(self.DIALOG)
        self.page.locator(f'{self.DIALOG} input[name="step-name"]').fill(name)
        self.dialog_accept()

    def context_menu(self, index: int, label: str) -> None:
        """Right-click a cell's editor and choose ``label`` in JupyterLab's context menu."""
        self.cell(index).locator(".jp-InputArea-editor").click(button="right")
        self.page.locator(".lm-Menu-item:visible", has_text=label).click()

    def badge(self, index: int):
        return self.cell(index).locator(self.BADGE)

    def sidebar_tab(self, tab: str) -> None:
        self.page.locator(f'{self.SIDEBAR} .jp-mlplat-tab[data-tab="{tab}"]').click()

    def run_id(self) -> str:
        return self.page.locator(self.RUN_DETAIL).get_attribute("data-run") or ""

    def step_statuses(self) -> dict[str, str]:
        """Step name -> status, as the Runs tab shows the selected run."""
        rows = self.page.locator(f"{self.RUN_DETAIL} tr[data-step]")
        return {rows.nth(i).get_attribute("data-step"): rows.nth(i).get_attribute("data-status")
                for i in range(rows.count())}

    def wait_for_steps(self, statuses: set[str], count: int, timeout_s: float) -> dict[str, str]:
        """Until the selected run shows ``count`` steps, all in ``statuses``; fails early on a
        failed step (with the sidebar's error text)."""
        deadline = time.monotonic() + timeout_s
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            seen = self.step_statuses()
            if len(seen) == count and set(seen.values()) <= statuses:
                return seen
            if {"failed", "upstream_failed", "cancelled", "interrupted"} & set(seen.values()):
                errors = self.page.locator(f"{self.RUN_DETAIL} .jp-mlplat-message-error")
                shown = [errors.nth(i).inner_text() for i in range(errors.count())]
                raise AssertionError(f"the run did not succeed: {seen}; errors shown: {shown}")
            self.page.wait_for_timeout(500)
        raise AssertionError(f"steps not all {statuses} after {timeout_s:.0f} s: {seen}")

    def open_step_notebook(self, step: str) -> None:
        """Select the step in the Runs tab, press "Executed notebook"."""
        self.page.locator(f'{self.RUN_DETAIL} tr[data-step="{step}"]').click()
        self.page.locator(f'{self.RUN_DETAIL} .jp-mlplat-step[data-step="{step}"] '
                          '.jp-mlplat-open-notebook').click()


@pytest.fixture
def lab_page(lab_server: LabServer) -> Iterator[LabPage]:
    """A fresh headless Chromium page on the lab (not opened yet)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield LabPage(page, lab_server)
            context.close()
        finally:
            browser.close()
