"""The step graph of a notebook: data edges, explicit ``after`` edges, run order and cycles.

``notebook`` reads the marks and groups cells into ``StepBuild``\\ s; ``resolve_edges`` then
works out what each step reads from which other step and puts the steps in run order. Standard
library only, like ``notebook``, so the nothing-changed rerun stays fast.

Edges and data
    A step that reads a name depends on the step whose cell defines or mutates it nearest above
    the reading cell; the name becomes an output of that step and an input of the reader.
    Names from ``imports``/``functions`` cells, parameters and builtins are visible to every
    step and are not data; a parameter an earlier step redefines is data. Names a step binds
    only by ``import`` are not passed on (modules are not data): a later step that needs them is
    told to put the import in an ``imports`` cell. Explicit ``inputs``/``outputs`` replace the
    inferred ones for their step. Each name a ``pipeline-metrics`` cell reads is a metric of the
    last step that defines it.

Order
    Steps run in notebook order, except that a step whose ``after`` names a later step moves just
    behind it, so every step comes after its upstream. Steps that depend on each other are an
    error that names the cycle and the cell that made each of its edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.pipeline import deps
from jupyter_mlplat.pipeline.spec import CellRef, Parameter, StepSpec

__all__ = ["Cell", "Scope", "StepBuild", "cell_error", "resolve_edges"]


class Cell(Protocol):
    """A non-empty code cell as this module needs it (``notebook._Cell`` is one)."""

    @property
    def index(self) -> int:
        """Position in the notebook's cell list (markdown and raw cells counted)."""

    @property
    def source(self) -> str:
        """The cell's text."""

    @property
    def parsed(self) -> deps.ParsedCell | None:
        """The cell's parse; set on every cell of a step before ``resolve_edges``."""

    @property
    def ref(self) -> CellRef:
        """The cell as recorded on a ``StepSpec``."""


def cell_error(cell: Cell, problem: str, expected: str) -> InvalidSpecError:
    """The error for a problem in ``cell``: ``cell <index> ("<first line>"): <problem>; expected
    <expected>``, the form of every notebook error that points at a cell."""
    return InvalidSpecError(f"{_where(cell.index, cell.source)}: {problem}; expected {expected}")


def _where(index: int, source: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    return f'cell {index} ("{first}")'


@dataclass
class Scope:
    """What every step sees without an edge: the imports/functions cells and the parameters."""

    shared: set[str]  # defined by imports/functions cells
    shared_star: bool  # an imports/functions cell does ``from m import *``
    parameters: dict[str, Parameter]


@dataclass
class StepBuild:
    """One step while it is being built: what its marks say, then what ``resolve_edges`` finds."""

    name: str
    cells: list[Cell] = field(default_factory=list)
    after: dict[str, Cell] = field(default_factory=dict)  # upstream step -> cell naming it
    options: dict[str, Any] = field(default_factory=dict)
    option_cells: dict[str, Cell] = field(default_factory=dict)
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    # filled by resolve_edges
    data_inputs: dict[str, str] = field(default_factory=dict)
    data_outputs: set[str] = field(default_factory=set)
    params: set[str] = field(default_factory=set)
    metrics: list[str] = field(default_factory=list)
    edge_cells: dict[str, tuple[Cell, str]] = field(default_factory=dict)  # why it is upstream
    upstream: set[str] = field(default_factory=set)
    usages: list[deps.Usage] = field(default_factory=list)

    def spec(self) -> StepSpec:
        """The finished step, once ``resolve_edges`` has run."""
        if self.outputs is not None:
            outputs = tuple(self.outputs)
        else:
            outputs = tuple(sorted(self.data_outputs))
        return StepSpec(
            name=self.name,
            cells=tuple(cell.ref for cell in self.cells),
            after=tuple(self.after),
            upstream=tuple(sorted(self.upstream)),
            inputs=dict(sorted(self.data_inputs.items())),
            outputs=outputs,
            params=tuple(sorted(self.params)),
            metrics=tuple(self.metrics),
            **self.options,
        )


def resolve_edges(
    steps: Mapping[str, StepBuild], scope: Scope, metrics: Sequence[Cell] = ()
) -> list[StepBuild]:
    """Work out every step's edges and put the steps in run order (see the module docstring).

    Parameters
    ----------
    steps : mapping of str to StepBuild
        The steps by name, in notebook order, with their cells parsed. Their ``data_inputs``,
        ``data_outputs``, ``params``, ``metrics``, ``edge_cells``, ``upstream`` and ``usages``
        are filled in place.
    scope : Scope
        The names visible to every step.
    metrics : sequence of Cell
        The ``pipeline-metrics`` cells, parsed.

    Returns
    -------
    list of StepBuild
        The same steps, in notebook order moved only where needed so that each step follows
        its upstream.

    Raises
    ------
    InvalidSpecError
        Naming the cell: a name read but defined by no earlier step, parameter or import; an
        ``inputs`` name no earlier step defines; ``after`` naming an unknown step; a metric no
        step defines; or a cycle.
    """
    resolved = _resolve(steps, scope)
    _attach_metrics(resolved, list(metrics), scope)
    return _order(resolved)


# --- data edges ----------------------------------------------------------------------------------


def _resolve(builds: Mapping[str, StepBuild], scope: Scope) -> list[StepBuild]:
    """Fill each step's inputs, outputs, params and upstream from what its cells read."""
    for build in builds.values():
        build.usages = deps.analyze_cells([c.parsed for c in build.cells])
    usages = {name: build.usages for name, build in builds.items()}
    imported_only: dict[str, set[str]] = {}
    import_sites: dict[str, tuple[int, str]] = {}
    for name, cell_usages in usages.items():
        assigned = {n for u in cell_usages for n in u.defines if n not in u.imported}
        imported_only[name] = {n for u in cell_usages for n in u.imported} - assigned
        for cell, usage in zip(builds[name].cells, cell_usages, strict=True):
            for imp in usage.imported:
                if imp in imported_only[name]:
                    import_sites.setdefault(imp, (cell.index, name))
    not_data = scope.shared | deps.BUILTINS | set(import_sites)

    # every (cell index, step) that binds each name, in notebook order
    producers: dict[str, list[tuple[int, str]]] = {}
    for name, build in builds.items():
        declared = None if build.outputs is None else set(build.outputs)
        for cell, usage in zip(build.cells, usages[name], strict=True):
            provided = [n for n in usage.defines if n not in imported_only[name]]
            provided += [n for n in usage.mutates if n not in not_data]
            for var in dict.fromkeys(provided):
                if declared is None or var in declared:
                    producers.setdefault(var, []).append((cell.index, name))
        for var in declared or ():
            if all(step != name for _, step in producers.get(var, [])):
                producers.setdefault(var, []).append((build.cells[-1].index, name))
    for sites in producers.values():
        sites.sort()

    def producer(var: str, index: int, reader: str) -> str | None:
        best = None
        for position, step in producers.get(var, ()):
            if position >= index:
                break
            if step != reader:
                best = step
        return best

    for name, build in builds.items():
        first = build.cells[0]
        for cell, usage in zip(build.cells, usages[name], strict=True):
            for var in usage.reads:
                if var in build.data_inputs or var in build.params:
                    continue
                source = producer(var, cell.index, name)
                if source is not None:
                    build.data_inputs[var] = source
                    build.edge_cells.setdefault(source, (cell, f"reads {var!r} from"))
                elif var in scope.parameters:
                    build.params.add(var)
                elif var in scope.shared or var in deps.BUILTINS:
                    continue
                elif build.inputs is None and not (
                    scope.shared_star or any(u.star_import for u in usages[name])
                ):
                    raise _undefined(cell, var, producers, import_sites)
        if build.inputs is not None:
            declared_inputs = {}
            for var in build.inputs:
                source = producer(var, first.index, name)
                if source is None:
                    raise cell_error(
                        first,
                        f"metadata.mlplat.inputs names {var!r}, which no earlier step defines",
                        "inputs that a step above this one defines or lists in its outputs",
                    )
                declared_inputs[var] = source
                build.edge_cells.setdefault(source, (first, f"reads {var!r} from"))
            build.data_inputs = declared_inputs
    for build in builds.values():
        for var, source in build.data_inputs.items():
            builds[source].data_outputs.add(var)
        for step, cell in build.after.items():
            if step not in builds:
                raise cell_error(
                    cell,
                    f"after/prev: names step {step!r}, which is not a step of this notebook",
                    f"one of: {', '.join(builds)}",
                )
            build.edge_cells.setdefault(step, (cell, "runs after"))
        build.upstream = set(build.after) | set(build.data_inputs.values())
    return list(builds.values())


def _undefined(
    cell: Cell,
    var: str,
    producers: dict[str, list[tuple[int, str]]],
    import_sites: dict[str, tuple[int, str]],
) -> InvalidSpecError:
    if var in import_sites:
        index, step = import_sites[var]
        return cell_error(
            cell,
            f"name {var!r} is imported by step {step!r} (cell {index}), "
            "and imports are not passed between steps",
            "the import in a cell tagged imports (or repeated in this step)",
        )
    problem = f"name {var!r} is not defined by any earlier step, parameter or import"
    later = [(i, step) for i, step in producers.get(var, ()) if i > cell.index]
    if later:
        problem += f"; defined later by step {later[0][1]!r} (cell {later[0][0]})"
    return cell_error(
        cell,
        problem,
        "a name defined above this cell (in a step, the parameters or an imports cell)",
    )


def _attach_metrics(steps: list[StepBuild], cells: list[Cell], scope: Scope) -> None:
    """Each name a metrics cell reads goes to the last step that defines it."""
    if not cells:
        return
    by_name = {step.name: step for step in steps}
    last: dict[str, tuple[int, str]] = {}
    for step in steps:
        for cell, usage in zip(step.cells, step.usages, strict=True):
            for var in (*usage.defines, *usage.mutates):
                if var not in last or last[var][0] < cell.index:
                    last[var] = (cell.index, step.name)
    for cell, usage in zip(cells, deps.analyze_cells([c.parsed for c in cells]), strict=True):
        for var in usage.reads:
            if var in deps.BUILTINS or var in scope.shared:
                continue
            if var not in last:
                raise cell_error(
                    cell,
                    f"metric {var!r} is not defined by any step",
                    "pipeline-metrics to name variables that a step assigns",
                )
            owner = by_name[last[var][1]]
            if var not in owner.metrics:
                owner.metrics.append(var)


# --- order and cycles ----------------------------------------------------------------------------


def _order(steps: list[StepBuild]) -> list[StepBuild]:
    """Notebook order, moved only where needed so that each step follows its upstream."""
    placed: list[StepBuild] = []
    done: set[str] = set()
    waiting = list(steps)
    while waiting:
        ready = next((s for s in waiting if s.upstream <= done), None)
        if ready is None:
            raise _cycle(waiting)
        waiting.remove(ready)
        placed.append(ready)
        done.add(ready.name)
    return placed


def _cycle(waiting: list[StepBuild]) -> InvalidSpecError:
    by_name = {step.name: step for step in waiting}
    path = [waiting[0].name]
    while True:
        current = by_name[path[-1]]
        nxt = next(up for up in sorted(current.upstream) if up in by_name)
        if nxt in path:
            loop = path[path.index(nxt) :] + [nxt]
            break
        path.append(nxt)
    loop.reverse()  # upstream first: a -> b means b runs after a
    edges = list(zip(loop, loop[1:]))
    explicit = [(up, down) for up, down in edges if up in by_name[down].after]
    up, down = (explicit or edges)[0]
    cell = by_name[down].edge_cells[up][0]
    why = ", ".join(
        f"{d!r} {by_name[d].edge_cells[u][1]} {u!r} (cell {by_name[d].edge_cells[u][0].index})"
        for u, d in edges
    )
    return cell_error(
        cell,
        f"the steps form a cycle: {' -> '.join(loop)}: {why}",
        "each step to depend only on steps that do not depend on it (check after/prev:, and "
        "cells that mark a step again further down, which join the earlier step)",
    )
