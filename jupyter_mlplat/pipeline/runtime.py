"""The kernel side of a step: the injected first and last cells of every step notebook call these.

``enter_step`` moves into the notebook's folder, sets the tracking context and returns the step's
inputs (loaded from the artifact store) for the cell to put into the kernel's namespace.
``exit_step`` saves the step's outputs, logs its pipeline-metrics and writes a manifest file the
worker reads back, atomically, so a half-written manifest is never read.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..tracking import api as tracking


def enter_step(context: dict[str, Any]) -> dict[str, Any]:
    """Prepare the kernel for a step and return its input values by variable name."""
    if context.get("cwd"):
        os.chdir(context["cwd"])
    tracking.set_context(
        tracking.StepContext(
            run_id=context["run_id"],
            step_run_id=context["step_run_id"],
            step=context["step"],
            tracking_path=context["tracking_path"],
            artifacts_url=context.get("artifacts_url") or "",
        )
    )
    inputs = context.get("inputs") or {}
    if not inputs:
        return {}
    from ..store import open_artifacts
    from .marshal import ArtifactRef, load_values

    store = open_artifacts(context["artifacts_url"])
    refs = {name: ArtifactRef.from_dict(ref) for name, ref in inputs.items()}
    return load_values(refs, store=store, allow_trusted_only=bool(context.get("trusted", False)))


def exit_step(namespace: dict[str, Any], context: dict[str, Any]) -> None:
    """Save the step's outputs and metrics; write the manifest for the worker."""
    step = context["step"]
    missing = [name for name in context.get("outputs", []) if name not in namespace]
    if missing:
        from ..errors import SerializationError

        raise SerializationError(
            f"step {step!r} did not define {', '.join(map(repr, missing))}, which a downstream "
            "step reads; define it in every branch of the step"
        )
    for name in context.get("metrics", []):
        if name in namespace:
            tracking.log_metric(name, namespace[name])
    refs: dict[str, Any] = {}
    if context.get("outputs"):
        from ..store import open_artifacts
        from .marshal import save_values

        store = open_artifacts(context["artifacts_url"])
        values = {name: namespace[name] for name in context["outputs"]}
        refs = {name: ref.to_dict() for name, ref in save_values(values, step=step,
                                                                   store=store).items()}
    path = context["manifest_path"]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"outputs": refs}, f)
    os.replace(tmp, path)
    tracking.set_context(None)
