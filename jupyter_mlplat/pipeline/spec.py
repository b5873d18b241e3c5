"""PipelineSpec and StepSpec: what a notebook's marks describe, before anything runs.

Specs are plain frozen dataclasses built by ``pipeline.notebook.parse_notebook`` with the standard
library only, so the nothing-changed path (parse, hash, look up the cache) stays fast. They round
trip through JSON (``to_dict`` / ``from_dict``) because a run stores the spec it ran, and
``resume`` runs that stored spec, not the notebook as it is now.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: Step options a user may set in ``metadata.mlplat`` besides the step name and edges.
STEP_OPTIONS = ("gpu", "cache", "retries", "timeout", "kernel", "env", "threads")


@dataclass(frozen=True)
class CellRef:
    """One code cell of the source notebook that belongs to a step (or to a shared section)."""

    index: int  # position in the notebook's cell list (markdown cells counted)
    id: str | None  # nbformat 4.5 cell id, when the notebook has one
    source: str  # the cell's source as written
    normalized: str  # ast dump of the source (comments/whitespace removed); hashes use this

    @property
    def first_line(self) -> str:
        """The cell's first non-empty line, for error messages."""
        for line in self.source.splitlines():
            if line.strip():
                return line.strip()
        return ""


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter from the cell tagged ``parameters`` / ``pipeline-parameters``."""

    name: str
    source: str  # the right-hand side as written, e.g. "100" or "'rf'"
    default: Any = None  # ast.literal_eval of ``source``; None when it is not a literal
    literal: bool = True  # False when ``source`` is an expression that is not a literal
    type_name: str = "NoneType"  # type of ``default`` ("int", "str", ...), for -p validation


@dataclass(frozen=True)
class StepSpec:
    """One pipeline step: its cells, edges, data in and out, and options."""

    name: str
    cells: tuple[CellRef, ...]
    after: tuple[str, ...] = ()  # explicit edges (``after`` / ``prev:``)
    upstream: tuple[str, ...] = ()  # all direct upstream steps: explicit plus data edges, sorted
    inputs: dict[str, str] = field(default_factory=dict)  # variable -> producing step
    outputs: tuple[str, ...] = ()  # variables this step saves (read by some downstream step)
    params: tuple[str, ...] = ()  # pipeline parameters this step reads
    metrics: tuple[str, ...] = ()  # variables logged as metrics after the step (pipeline-metrics)
    gpu: int = 0
    cache: bool = True
    retries: int = 0
    timeout: float | None = None  # seconds per cell execution, None: no limit
    kernel: str | None = None  # kernel spec name; None: the configured default
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None  # BLAS/torch threads; None: the executor decides

    @property
    def source(self) -> str:
        """All the step's code, cell after cell."""
        return "\n\n".join(cell.source for cell in self.cells)

    @property
    def code_hash(self) -> str:
        """sha256 of the step's normalised code and the options that change what it computes."""
        payload = {
            "code": [cell.normalized for cell in self.cells],
            "outputs": sorted(self.outputs),
            "metrics": sorted(self.metrics),
            "env": sorted(self.env.items()),
            "threads": self.threads,
            "kernel": self.kernel,
        }
        return sha256_json(payload)


@dataclass(frozen=True)
class PipelineSpec:
    """A parsed notebook: shared sections, parameters and steps in notebook order."""

    name: str  # the notebook's file name without extension
    path: str  # the notebook path as given (absolute once resolved by the caller)
    steps: tuple[StepSpec, ...]
    parameters: tuple[Parameter, ...] = ()
    imports: tuple[CellRef, ...] = ()  # cells tagged ``imports``: run first in every step
    functions: tuple[CellRef, ...] = ()  # cells tagged ``functions``: run after the imports
    kernel: str | None = None  # the notebook's kernelspec name, when it has one
    #: validation policies by model name, from the notebook's ``metadata.mlplat.policies``
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def step(self, name: str) -> StepSpec:
        """The step called ``name``; ``KeyError`` names the known steps."""
        for step in self.steps:
            if step.name == name:
                return step
        known = ", ".join(s.name for s in self.steps)
        raise KeyError(f"no step named {name!r} in {self.name}; steps: {known}")

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def shared_hash(self) -> str:
        """sha256 of the imports and functions sections (they are part of every step's version)."""
        return sha256_json(
            {
                "imports": [c.normalized for c in self.imports],
                "functions": [c.normalized for c in self.functions],
            }
        )

    def downstream(self, name: str) -> list[str]:
        """``name`` and every step that depends on it, directly or not, in notebook order."""
        found = {name}
        for step in self.steps:
            if any(up in found for up in step.upstream):
                found.add(step.name)
        return [s.name for s in self.steps if s.name in found]

    def ancestors(self, name: str) -> list[str]:
        """``name`` and every step it depends on, in notebook order."""
        found = {name}
        for step in reversed(self.steps):
            if step.name in found:
                found.update(step.upstream)
        return [s.name for s in self.steps if s.name in found]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: a parameter default JSON cannot hold (a set, a tuple) is kept as its
        source, which ``from_dict`` evaluates again."""
        data = asdict(self)
        for param in data["parameters"]:
            try:
                json.dumps(param["default"])
            except (TypeError, ValueError):
                param["default"] = None
            if isinstance(param["default"], tuple):
                param["default"] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        def cells(items: list[dict[str, Any]]) -> tuple[CellRef, ...]:
            return tuple(CellRef(**item) for item in items)

        steps = []
        for raw in data["steps"]:
            raw = dict(raw)
            raw["cells"] = cells(raw["cells"])
            for key in ("after", "upstream", "outputs", "params", "metrics"):
                raw[key] = tuple(raw.get(key, ()))
            steps.append(StepSpec(**raw))
        return cls(
            name=data["name"],
            path=data["path"],
            steps=tuple(steps),
            parameters=tuple(_parameter(p) for p in data.get("parameters", ())),
            imports=cells(data.get("imports", [])),
            functions=cells(data.get("functions", [])),
            kernel=data.get("kernel"),
            policies=dict(data.get("policies") or {}),
        )


def _parameter(data: dict[str, Any]) -> Parameter:
    if data.get("literal", True):
        data = {**data, "default": ast.literal_eval(data["source"])}
    return Parameter(**data)


def sha256_json(payload: Any) -> str:
    """sha256 hex digest of ``payload`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()
