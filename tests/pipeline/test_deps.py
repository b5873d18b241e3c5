"""deps: names read, defined and mutated; normalisation; IPython syntax."""

from __future__ import annotations

import pytest

from jupyter_mlplat.pipeline.deps import BUILTINS, analyze, analyze_cells, normalize, parse


def reads(src: str) -> list[str]:
    return [n for n in analyze(src).reads if n not in BUILTINS]


# --- order-aware reads ---------------------------------------------------------------------------


def test_value_is_read_before_target_is_bound():
    assert reads("x = x + 1") == ["x"]
    assert reads("x = 1\ny = x") == []


def test_reads_keep_first_read_order():
    assert reads("c = a + b\nd = b + a + e") == ["a", "b", "e"]


def test_aug_assign_reads_its_target():
    usage = analyze("total += 1")
    assert usage.reads == ("total",)
    assert usage.defines == ("total",)


def test_builtins_are_reported_but_listed_apart():
    usage = analyze("print(len(x))")
    assert usage.reads == ("print", "len", "x")
    assert {"print", "len", "display", "get_ipython", "In", "Out"} <= BUILTINS
    assert "__file__" not in BUILTINS


def test_conditional_definitions_count():
    usage = analyze("if flag:\n    y = 1\nelse:\n    pass\nz = y")
    assert "y" in usage.defines
    assert reads("if flag:\n    y = 1\nz = y") == ["flag"]


# --- scopes --------------------------------------------------------------------------------------


def test_comprehension_variables_are_not_reads():
    assert reads("out = [i * k for i in items if i > lo]") == ["items", "lo", "k"]
    assert reads("out = {k: v for k, v in pairs}") == ["pairs"]
    assert reads("out = [j for i in rows for j in i]") == ["rows"]


def test_lambda_and_function_parameters_and_locals_are_not_reads():
    assert reads("f = lambda a, *rest, b=dflt, **kw: a + b + scale") == ["dflt", "scale"]
    src = "def f(a, /, b, *args, c, **kw):\n    loc = a + b + c\n    return loc + factor\n"
    assert reads(src) == ["factor"]


def test_free_names_of_a_function_defined_later_in_the_step_are_not_reads():
    src = "def run():\n    return helper(data)\n\ndef helper(d):\n    return d\n"
    assert reads(src) == ["data"]
    assert reads(src + "data = 1\n") == []


def test_free_names_of_functions_come_after_direct_reads():
    assert reads("def f():\n    return g\nh = k") == ["k", "g"]


def test_nested_function_sees_enclosing_locals():
    src = "def outer(x):\n    y = 2\n    def inner():\n        return x + y + z\n    return inner\n"
    assert reads(src) == ["z"]


def test_class_body_names_are_invisible_to_methods():
    src = "class M(Base):\n    k = 1\n    j = k + top\n    def m(self):\n        return k\n"
    assert reads(src) == ["Base", "top", "k"]
    assert analyze(src).defines == ("M",)


def test_global_in_function_binds_at_module_level():
    usage = analyze("def setup():\n    global cfg\n    cfg = {}\n")
    assert set(usage.defines) == {"setup", "cfg"}


def test_walrus_binds_in_the_enclosing_scope():
    assert analyze("if (n := len(a)) > 2:\n    pass").defines == ("n",)
    usage = analyze("hits = [w for i in xs if (w := i)]\nlast = w")
    assert "w" in usage.defines
    assert reads("hits = [w for i in xs if (w := i)]\nlast = w") == ["xs"]


@pytest.mark.parametrize(
    ("src", "defined", "read"),
    [
        ("for i, (a, b) in enumerate(rows):\n    s = a", {"i", "a", "b", "s"}, ["rows"]),
        ("with open(p) as fh, ctx() as (u, v):\n    t = fh", {"fh", "u", "v", "t"}, ["p", "ctx"]),
        ("try:\n    r = go()\nexcept KeyError as err:\n    r = err", {"r", "err"}, ["go"]),
        ("import os.path\nimport numpy as np\nfrom a import b as c, d", {"os", "np", "c", "d"}, []),
        (
            "match cmd:\n    case [x, *rest]:\n        pass\n    case {'k': v, **kw}:\n        pass\n"
            "    case Point(x=0) as pt if pt.y > lim:\n        pass",
            {"x", "rest", "v", "kw", "pt"},
            ["cmd", "Point", "lim"],
        ),
        (
            "async def f():\n    async for a in src:\n        await use(a)\n"
            "    async with lock as held:\n        return held",
            {"f"},
            ["src", "use", "lock"],
        ),
        ("class K:\n    pass", {"K"}, []),
        ("del gone", set(), ["gone"]),
    ],
)
def test_binding_forms(src, defined, read):
    usage = analyze(src)
    assert set(usage.defines) == defined
    assert [n for n in usage.reads if n not in BUILTINS] == read


def test_import_only_names_are_flagged():
    usage = analyze("import pandas as pd\nfrom x import y\ny = 2\n")
    assert usage.imported == ("pd",)
    assert analyze("from m import *").star_import


# --- mutation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "mutated"),
    [
        ("df.dropna(inplace=True)", "df"),
        ("df['a'].fillna(0, inplace=True)", "df"),
        ("model.fit(X, y)", "model"),
        ("opt.zero_grad()", "opt"),
        ("items.append(1)", "items"),
        ("d['k'] = v", "d"),
        ("del d['k']", "d"),
        ("d['k'] += 1", "d"),
        ("obj.attr = 3", "obj"),
        ("obj.a.b[0] = 3", "obj"),
    ],
)
def test_mutations(src, mutated):
    usage = analyze(src)
    assert usage.mutates == (mutated,)
    assert mutated in usage.reads  # the object must exist first: a mutated upstream is an input


@pytest.mark.parametrize(
    "src", ["t2 = t.to('cuda')", "df.dropna(inplace=False)", "x = df.copy()", "f(d)"]
)
def test_non_mutations(src):
    assert analyze(src).mutates == ()


def test_mutation_of_a_free_name_inside_a_function_counts():
    assert analyze("def train():\n    model.fit(X)\n").mutates == ("model",)
    assert analyze("def f(m):\n    m.fit(X)\n").mutates == ()


# --- cells in sequence ---------------------------------------------------------------------------


def test_analyze_cells_carries_definitions_forward():
    first, second = analyze_cells(["a = load()", "b = a + c"])
    assert [n for n in second.reads if n not in BUILTINS] == ["c"]
    assert first.defines == ("a",)


# --- IPython syntax and normalisation ------------------------------------------------------------


def test_line_magics_and_shell_lines_are_neutralised():
    src = "%matplotlib inline\n!pip install x\nfor i in r:\n    %time f(i)\nfiles = !ls\nq = files"
    usage = analyze(src)
    assert set(usage.defines) == {"i", "files", "q"}
    assert reads(src) == ["r"]  # a magic line reads nothing, even `%time f(i)`


def test_help_lines_are_neutralised():
    assert analyze("df?\nx = 1").defines == ("x",)


def test_percent_continuation_line_that_is_python_is_kept():
    assert reads("s = ('%d'\n     % count)") == ["count"]


def test_python_cell_magics_analyse_their_body():
    assert reads("%%time\nr = compute(q)") == ["compute", "q"]
    assert analyze("%%capture out\nprint(a)").defines == ("out",)


def test_other_cell_magics_are_opaque():
    src = "%%bash\necho $HOME\nx = 1\n"
    assert analyze(src).defines == ()
    assert analyze(src).reads == ()
    assert normalize(src) == src.strip()
    assert parse(src).tree is None


def test_normalize_ignores_comments_and_blank_lines():
    assert normalize("x = f(1)  # call\n\n\n# done\n") == normalize("x=f( 1 )")
    assert normalize("x = f(1)") != normalize("x = f(2)")


def test_editing_a_magic_changes_the_normalised_code():
    assert normalize("!pip install a\nx = 1") != normalize("!pip install b\nx = 1")
    assert normalize("%%time\nx = 1") != normalize("%%timeit\nx = 1")


def test_syntax_error_keeps_the_cell_line_number():
    with pytest.raises(SyntaxError) as info:
        normalize("%load_ext x\nok = 1\nbad = (\n")
    assert info.value.lineno == 3
