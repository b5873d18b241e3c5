"""Static analysis of notebook code: which names a cell reads, defines and mutates.

Standard library only (``ast``): this runs on every "Run pipeline", including the nothing-changed
rerun, which must stay well under a second.

IPython syntax is neutralised before parsing, keeping the line count so error lines still match
the cell:

- a line whose first non-space character is ``%`` or ``!`` (line magic, shell command) becomes a
  string constant holding that line, so it reads and defines nothing but editing it still changes
  the normalised code (and with it the step version);
- ``x = !cmd`` and ``x = %magic`` become ``x = '<the magic>'``: they define ``x``;
- ``name?`` / ``name??`` help lines become string constants too;
- a cell magic ``%%time``, ``%%timeit``, ``%%prun`` or ``%%capture [var]`` is analysed as its
  body (``%%capture out`` also defines ``out``); any other cell magic (``%%bash``,
  ``%%writefile``, ...) is opaque: it reads and defines nothing and its normalised form is the raw
  text, stripped.

Scoping follows Python's rules. At module level the analysis is order-aware, statement by
statement, value before target (``x = x + 1`` reads ``x``). Comprehension variables, function and
lambda parameters and names local to a function are not reads. Free names in a function or lambda
body are reads unless the analysed code defines them anywhere (the function may run later); they
are listed after the direct reads. Conditional definitions count as definitions.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Names every kernel has without a definition: Python's builtins plus IPython's.
BUILTINS: frozenset[str] = frozenset(dir(builtins)) | {
    "display",
    "get_ipython",
    "In",
    "Out",
    "exit",
    "quit",
    "__name__",
}

#: Method names whose call mutates the object it is called on (``model.fit(X, y)``). ``to`` is
#: left out: for tensors it returns a new object.
MUTATING_METHODS: frozenset[str] = frozenset(
    {
        "fit",
        "partial_fit",
        "fit_transform",
        "fit_predict",
        "set_params",
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "update",
        "setdefault",
        "sort",
        "reverse",
        "add",
        "discard",
        "popitem",
        "load_state_dict",
        "train",
        "eval",
        "zero_grad",
        "step",
        "requires_grad_",
    }
)

#: Cell magics whose body is Python run in the user namespace.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})

_MAGIC_ASSIGN = re.compile(r"^(\s*)([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*([%!].*)$")
_HELP_LINE = re.compile(r"^\s*\??[A-Za-z_][\w.]*\?{1,2}\s*$")


@dataclass(frozen=True)
class ParsedCell:
    """A cell's source after neutralising IPython syntax."""

    source: str  # as written
    code: str  # the neutralised Python the analysis sees (same line count)
    tree: ast.Module | None  # None for an opaque cell magic (%%bash, %%writefile, ...)
    normalized: str  # ast.dump of ``tree``; the stripped raw text for an opaque cell magic


@dataclass(frozen=True)
class Usage:
    """What a piece of code does with names, in first-occurrence order."""

    reads: tuple[str, ...] = ()  # read before being defined within the code (builtins included)
    defines: tuple[str, ...] = ()  # bound (assigned, imported, def/class, for/with/except targets)
    mutates: tuple[str, ...] = ()  # changed in place: inplace=True, .fit(), d[k] = v, x.a = v
    imported: tuple[str, ...] = ()  # the names of ``defines`` bound only by import statements
    star_import: bool = False  # ``from m import *``: the names it binds are unknown


def parse(source: str) -> ParsedCell:
    """Neutralise IPython syntax in ``source`` and parse it.

    Parameters
    ----------
    source : str
        One cell's source.

    Returns
    -------
    ParsedCell
        The neutralised code, its ``ast.Module`` (None for an opaque cell magic) and the
        normalised form used for hashing.

    Raises
    ------
    SyntaxError
        When the code is not valid Python once magics are neutralised; ``lineno`` counts from
        the first line of ``source``.
    """
    code = _neutralize(source)
    if code is None:
        return ParsedCell(source, "", None, source.strip())
    tree = _parse_code(source, code)
    return ParsedCell(source, code, tree, ast.dump(tree))


def normalize(source: str) -> str:
    """The cell's code with comments, blank lines and layout removed (an ``ast.dump``).

    Parameters
    ----------
    source : str
        One cell's source; IPython magics and shell lines are allowed.

    Returns
    -------
    str
        Equal for two sources that differ only in comments and whitespace.

    Raises
    ------
    SyntaxError
        When the code does not parse.
    """
    return parse(source).normalized


def analyze(source: str | ParsedCell) -> Usage:
    """Names that ``source`` reads before defining them, defines, and mutates.

    Parameters
    ----------
    source : str or ParsedCell
        Python source (IPython syntax allowed) or an already parsed cell.

    Returns
    -------
    Usage
        ``reads`` in first-read order, then the free names of function bodies that the code
        does not define anywhere.

    Raises
    ------
    SyntaxError
        When the code does not parse.
    """
    return analyze_cells([source])[0]


def analyze_cells(sources: Sequence[str | ParsedCell]) -> list[Usage]:
    """Analyse cells that run one after the other (one step): one ``Usage`` per cell.

    A cell's ``reads`` leave out names an earlier cell of the sequence defined. Free names of a
    function body count as reads of the cell defining the function unless some cell of the
    sequence defines them.
    """
    walker = _ModuleWalker()
    raw = []
    for item in sources:
        cell = item if isinstance(item, ParsedCell) else parse(item)
        raw.append(walker.feed(cell.tree))
    everything = set().union(*(r.binds for r in raw)) if raw else set()
    return [r.usage(everything) for r in raw]


# --- IPython syntax ------------------------------------------------------------------------------


def _neutralize(source: str) -> str | None:
    """``source`` with magics made inert, or None when it is an opaque cell magic."""
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return source
    head = lines[first].strip()
    if head.startswith("%%"):
        words = head[2:].split()
        magic = words[0] if words else ""
        if magic not in PYTHON_CELL_MAGICS:
            return None
        target = next((w for w in words[1:] if not w.startswith("-")), None)
        if magic == "capture" and target and target.isidentifier():
            lines[first] = f"{target} = {head!r}"
        else:
            lines[first] = repr(head)
        rest = "\n".join(lines[first + 1 :])
        return "\n".join(lines[: first + 1]) + ("\n" + _neutralize_lines(rest) if rest else "")
    return _neutralize_lines(source)


def _neutralize_lines(source: str) -> str:
    if "%" not in source and "!" not in source and "?" not in source:
        return source
    return "\n".join(_neutralize_line(line) for line in source.split("\n"))


def _neutralize_line(line: str) -> str:
    stripped = line.lstrip()
    indent = line[: len(line) - len(stripped)]
    if stripped.startswith(("%", "!")):
        return f"{indent}{stripped.rstrip()!r}"
    if "=" in line and ("%" in line or "!" in line):
        match = _MAGIC_ASSIGN.match(line)
        if match and not match.group(3).startswith(("!=", "%=")):
            return f"{match.group(1)}{match.group(2)} = {match.group(3).rstrip()!r}"
    if line.endswith("?") or line.rstrip().endswith("?"):
        if _HELP_LINE.match(line):
            return f"{indent}{stripped.rstrip()!r}"
    return line


def _parse_code(source: str, code: str) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as neutralized_error:
        if code == source:
            raise
        # A line starting with % can be valid Python (a continued ``"..." % x``): neutralise only
        # the lines the parser actually rejects.
        try:
            return _parse_rejected_lines_only(source)
        except SyntaxError:
            raise neutralized_error from None


def _parse_rejected_lines_only(source: str) -> ast.Module:
    lines = source.split("\n")
    for _ in range(len(lines) + 1):
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as err:
            index = (err.lineno or 0) - 1
            if not 0 <= index < len(lines):
                raise
            fixed = _neutralize_line(lines[index])
            if fixed == lines[index]:
                raise
            lines[index] = fixed
    raise SyntaxError("could not neutralise IPython syntax")


# --- scopes --------------------------------------------------------------------------------------


class _Walker(ast.NodeVisitor):
    """Loads, binds and mutations of one scope; nested scopes are walked into ``children``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "module", "function", "class" or "comprehension"
        self.loads: dict[str, None] = {}
        self.binds: set[str] = set()
        self.mutates: dict[str, None] = {}
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.outer_binds: set[str] = set()  # walrus targets in a comprehension
        self.children: list[_Walker] = []

    # hooks the module walker overrides
    def load(self, name: str) -> None:
        self.loads.setdefault(name)

    def bind(self, name: str, *, imported: bool = False) -> None:
        self.binds.add(name)

    def unbind(self, name: str) -> None:
        self.binds.add(name)

    def mutate(self, name: str) -> None:
        self.mutates.setdefault(name)

    def star(self) -> None:
        """``from m import *`` inside a function is a SyntaxError; nothing to do here."""

    def nested(self, child: _Walker) -> None:
        if child.kind == "comprehension":
            if self.kind == "comprehension":
                self.outer_binds |= child.outer_binds
            else:
                self.binds |= child.outer_binds
        self.children.append(child)

    # names
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.bind(node.id)
        else:
            self.load(node.id)
            self.unbind(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.declared_nonlocal.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bind(alias.asname or alias.name.split(".")[0], imported=True)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.star()
            else:
                self.bind(alias.asname or alias.name, imported=True)

    # statements whose fields are not in evaluation order
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
            self.visit(node.value)
            self.bind(node.target.id)
        else:
            self.visit(node.value)
            self.visit(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.visit(node.target)
        elif not isinstance(node.target, ast.Name):
            self.visit(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in (*node.body, *node.orelse):
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        if self.kind == "comprehension":
            self.outer_binds.add(node.target.id)
        else:
            self.bind(node.target.id)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bind(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.bind(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        for key in node.keys:
            self.visit(key)
        for pattern in node.patterns:
            self.visit(pattern)
        if node.rest:
            self.bind(node.rest)

    # mutation
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and (
            func.attr in MUTATING_METHODS
            or any(
                kw.arg == "inplace"
                and isinstance(kw.value, ast.Constant)
                and kw.value.value is True
                for kw in node.keywords
            )
        ):
            base = _base_name(func.value)
            if base:
                self.mutate(base)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not isinstance(node.ctx, ast.Load):
            base = _base_name(node.value)
            if base:
                self.mutate(base)
        self.visit(node.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            base = _base_name(node.value)
            if base:
                self.mutate(base)
        self.visit(node.value)
        self.visit(node.slice)

    # nested scopes
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._signature(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        child = _Walker("function")
        child._parameters(node.args)
        for stmt in node.body:
            child.visit(stmt)
        self.nested(child)
        self.bind(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._signature(node.args)
        child = _Walker("function")
        child._parameters(node.args)
        child.visit(node.body)
        self.nested(child)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        child = _Walker("class")
        for stmt in node.body:
            child.visit(stmt)
        self.nested(child)
        self.bind(node.name)

    def _comprehension(self, generators: list[ast.comprehension], *elts: ast.AST) -> None:
        self.visit(generators[0].iter)  # the first iterable is evaluated in the enclosing scope
        child = _Walker("comprehension")
        for i, gen in enumerate(generators):
            if i:
                child.visit(gen.iter)
            child.visit(gen.target)
            for cond in gen.ifs:
                child.visit(cond)
        for elt in elts:
            child.visit(elt)
        self.nested(child)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node.generators, node.elt)

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node.generators, node.key, node.value)

    def _signature(self, args: ast.arguments) -> None:
        """Defaults and annotations: evaluated where the function is defined."""
        for expr in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
            self.visit(expr)
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)

    def _parameters(self, args: ast.arguments) -> None:
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None:
                self.binds.add(arg.arg)

    def free(self) -> tuple[list[str], list[str], list[str], list[str], set[str]]:
        """(immediate reads, deferred reads, immediate mutations, deferred mutations, globals
        bound) of this scope as seen from the enclosing one."""
        if self.kind == "function":
            local = self.binds - self.declared_global - self.declared_nonlocal
        else:  # a comprehension's walrus targets live outside but are bound by the time they are read
            local = self.binds | self.outer_binds
        now = [n for n in self.loads if n not in local]
        now_mut = [n for n in self.mutates if n not in local]
        later: list[str] = []
        later_mut: list[str] = []
        global_binds = self.binds & self.declared_global
        for child in self.children:
            c_now, c_later, c_now_mut, c_later_mut, c_globals = child.free()
            global_binds |= c_globals
            if child.kind == "function":
                c_later, c_later_mut = c_now + c_later, c_now_mut + c_later_mut
                c_now, c_now_mut = [], []
            # a class body's names are invisible to the scopes nested in it
            hidden = set() if self.kind == "class" else local
            now += [n for n in c_now if n not in hidden]
            later += [n for n in c_later if n not in hidden]
            now_mut += [n for n in c_now_mut if n not in hidden]
            later_mut += [n for n in c_later_mut if n not in hidden]
        return now, later, now_mut, later_mut, global_binds


@dataclass
class _CellResult:
    reads: dict[str, None]
    defines: dict[str, None]
    mutates: dict[str, None]
    imported: set[str]
    assigned: set[str]
    deferred_reads: dict[str, None]
    binds: set[str]
    star_import: bool = False

    def usage(self, step_binds: set[str]) -> Usage:
        reads = dict(self.reads)
        for name in self.deferred_reads:
            if name not in step_binds:
                reads.setdefault(name)
        return Usage(
            reads=tuple(reads),
            defines=tuple(self.defines),
            mutates=tuple(self.mutates),
            imported=tuple(
                n for n in self.defines if n in self.imported and n not in self.assigned
            ),
            star_import=self.star_import,
        )


class _ModuleWalker(_Walker):
    """The top level of a step: order-aware, carrying definitions from one cell to the next."""

    def __init__(self) -> None:
        super().__init__("module")
        self.defined: set[str] = set()
        self.cell = self._new_cell()

    @staticmethod
    def _new_cell() -> _CellResult:
        return _CellResult({}, {}, {}, set(), set(), {}, set())

    def feed(self, tree: ast.Module | None) -> _CellResult:
        self.cell = self._new_cell()
        if tree is not None:
            for stmt in tree.body:
                self.visit(stmt)
        return self.cell

    def load(self, name: str) -> None:
        if name not in self.defined:
            self.cell.reads.setdefault(name)

    def bind(self, name: str, *, imported: bool = False) -> None:
        self.defined.add(name)
        self.cell.defines.setdefault(name)
        self.cell.binds.add(name)
        (self.cell.imported if imported else self.cell.assigned).add(name)

    def unbind(self, name: str) -> None:
        self.defined.discard(name)
        self.cell.defines.pop(name, None)
        self.cell.mutates.pop(name, None)

    def mutate(self, name: str) -> None:
        self.cell.mutates.setdefault(name)

    def star(self) -> None:
        self.cell.star_import = True

    def nested(self, child: _Walker) -> None:
        now, later, now_mut, later_mut, global_binds = child.free()
        if child.kind == "function":
            later, later_mut, now, now_mut = now + later, now_mut + later_mut, [], []
        for name in now:
            self.load(name)
        for name in later:
            self.cell.deferred_reads.setdefault(name)
        for name in (*now_mut, *later_mut):
            self.mutate(name)
        for name in sorted(global_binds):
            self.bind(name)
        for name in sorted(child.outer_binds):
            self.bind(name)


def _base_name(node: ast.AST) -> str | None:
    """``df`` for ``df``, ``df.a``, ``df["a"].b``; None when the chain starts elsewhere."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None
