"""What a schedule fires, checked: the notebook's path, its parameters and its kernel.

A *notebook* target is one papermill job: the notebook as it is, its ``parameters`` cell
overridden papermill-style (a cell of assignments injected after it, every value keeping its
type). A *pipeline* target is the notebook's steps run through the ``PipelineExecutor``, and its
marks must parse. Either way a parameter the notebook does not declare, or a value whose type
differs from the declared default's, is refused when the schedule is made, not at 3 a.m.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from ..errors import InvalidSpecError, NotFoundError
from ..pipeline.spec import Parameter, PipelineSpec


def resolve_notebook(notebook: str, root: str | Path | None) -> Path:
    """The absolute path of ``notebook``; with ``root``, a path inside it or an error.

    Parameters
    ----------
    notebook : str
        A path; relative to ``root`` when one is given, else to the working directory.
    root : path, optional
        The server's root: the path must stay inside it (``..``, absolute paths and symlinks
        that lead out are refused).
    """
    if not isinstance(notebook, str) or not notebook.strip():
        raise InvalidSpecError("a notebook path is needed, e.g. 'retrain.ipynb'")
    if "\x00" in notebook:
        raise InvalidSpecError("the notebook path contains a NUL character")
    if root is None:
        return Path(notebook).expanduser().resolve()
    base = Path(root).expanduser().resolve()
    given = Path(notebook)
    if given.is_absolute():
        raise InvalidSpecError(f"notebook path {notebook!r} is absolute; expected a path "
                               "relative to the server root")
    path = (base / given).resolve()
    if not path.is_relative_to(base):
        raise InvalidSpecError(f"notebook path {notebook!r} leads outside the server root; "
                               "expected a path inside it")
    return path


def display_path(path: str, root: str | Path | None) -> str:
    """``path`` relative to ``root`` when inside it (what the REST client sent), else as is."""
    if root is None:
        return path
    try:
        return Path(path).relative_to(Path(root).expanduser().resolve()).as_posix()
    except ValueError:
        return path


def target_spec(path: Path, target: str) -> PipelineSpec:
    """The notebook at ``path`` read as the target says, with its parameters.

    Raises
    ------
    InvalidSpecError
        A missing file, not a notebook, or (pipeline) marks that do not parse.
    """
    from ..pipeline.notebook import load_notebook, parse_notebook

    try:
        nb = load_notebook(path)
    except NotFoundError:
        raise InvalidSpecError(f"notebook not found: {path}; expected an existing .ipynb "
                               "file") from None
    if target == "pipeline":
        return parse_notebook(nb, path=str(path), name=path.stem)
    kernelspec = (nb.get("metadata") or {}).get("kernelspec") or {}
    kernel = kernelspec.get("name") if isinstance(kernelspec, dict) else None
    return PipelineSpec(name=path.stem, path=str(path), steps=(),
                        parameters=tuple(notebook_parameters(nb).values()),
                        kernel=kernel if isinstance(kernel, str) else None)


def notebook_parameters(nb: dict[str, Any]) -> dict[str, Parameter]:
    """The assignments of the cells tagged ``parameters`` (papermill's convention)."""
    found: dict[str, Parameter] = {}
    for cell in nb.get("cells") or []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        tags = (cell.get("metadata") or {}).get("tags") or []
        if "parameters" not in tags:
            continue
        source = cell.get("source") or ""
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # papermill injects after it anyway; the run reports the error
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            else:
                continue
            text = ast.get_source_segment(source, value) or ast.unparse(value)
            try:
                default, literal = ast.literal_eval(value), True
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                default, literal = None, False
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = Parameter(target.id, text, default, literal,
                                                 type(default).__name__)
    return found


def check_parameters(spec: PipelineSpec, parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` once every name is declared and every value fits its default's type, in
    the form they are stored in (JSON: a tuple as a list, an int given for a float default as a
    float).

    Values must be JSON (they are stored, and sent over REST): str, int, float, bool, None,
    and lists and dicts of them; a list stands for a tuple where the default is a tuple.
    """
    from ..pipeline.parameters import resolve_parameters

    if not isinstance(parameters, dict):
        raise InvalidSpecError(f"parameters must be a mapping of name to value; got "
                               f"{type(parameters).__name__}")
    for name, value in parameters.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidSpecError(
                f"parameter {name!r}: {type(value).__name__} {value!r} cannot be stored with "
                "the schedule; expected a str, int, float, bool, None, or a list or dict of "
                "them") from None
    if not spec.parameters and parameters:
        raise InvalidSpecError(
            f"unknown parameter {next(iter(parameters))!r}: {Path(spec.path).name} has no "
            "cell tagged 'parameters'; tag the cell that sets the defaults")
    resolve_parameters(spec, firing_parameters(spec, parameters))
    return json.loads(json.dumps(_typed(spec, parameters, tuples=False)))


def firing_parameters(spec: PipelineSpec, stored: dict[str, Any]) -> dict[str, Any]:
    """Stored parameter values as the notebook gets them: a list back to a tuple where the
    default is a tuple, an int as a float where the default is a float."""
    return _typed(spec, stored, tuples=True)


def _typed(spec: PipelineSpec, values: dict[str, Any], *, tuples: bool) -> dict[str, Any]:
    out = dict(values)
    for name, value in values.items():
        param = spec.parameter(name)
        if param is None or not param.literal or param.default is None:
            continue
        if isinstance(param.default, tuple) and isinstance(value, list | tuple):
            out[name] = tuple(value) if tuples else list(value)
        elif (isinstance(param.default, float) and isinstance(value, int)
              and not isinstance(value, bool)):
            out[name] = float(value)
    return out


def injected_source(parameters: dict[str, Any]) -> str:
    """The cell papermill injects after the ``parameters`` cell, for values papermill cannot
    write itself as well: papermill's Python literals for JSON values (so the executed notebook
    reads as papermill's do), ``repr`` for a tuple (papermill would make it a string)."""
    from papermill.translators import PythonTranslator

    lines = [PythonTranslator.comment("Parameters")]
    for name, value in parameters.items():
        text = repr(value) if isinstance(value, tuple) else PythonTranslator.translate(value)
        lines.append(PythonTranslator.assign(name, text))
    return "\n".join(lines) + "\n"


def parse_cli_parameter(spec: PipelineSpec, name: str, raw: str) -> Any:
    """``-p NAME VALUE`` text typed like the notebook's default for ``name``."""
    from ..pipeline.parameters import parse_cli_value

    return parse_cli_value(name, raw, spec)


def check_kernel(name: str | None) -> str | None:
    """``name`` when a kernel spec of that name is installed (None stays None)."""
    if name is None:
        return None
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise InvalidSpecError(f"unknown kernel {name!r}; installed kernels: {known}")
    return name
