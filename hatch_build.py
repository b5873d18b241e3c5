"""Wheel build hook: ship the repo's ``templates/`` in the package as ``jupyter_mlplat/_templates``.

Only standard wheels get the copy. An editable install reads the repo's ``templates/`` directly
(runtime code falls back to it), so nothing stale lands in site-packages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class TemplatesBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version != "standard":
            return
        templates = Path(self.root) / "templates"
        if not templates.is_dir():
            self.app.display_warning("templates/ not found: the wheel carries no templates")
            return
        build_data["force_include"][str(templates)] = "jupyter_mlplat/_templates"
