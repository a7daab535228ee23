"""dvc.yaml reads like the method, and says the truth about what each stage reads and writes."""

from __future__ import annotations

import ast

import yaml

from auxcut.core import paths
from conftest import REPO

METHOD = ["prepare", "train_base", "confusion", "maxcut", "relabel", "train_aux", "stack", "fit_head", "fairness"]
VARIANTS = ["train_attributes", "train_exits", "occlude", "train_missing", "robustness", "discover", "train_fine",
            "score_fine"]  # the family's other systems, on the method's base and cut
# Modules that carry no science (params and their checks, I/O, tracking, stage plumbing): not deps, so that changing
# how a result is logged does not re-train models. Everything else a stage imports must be a declared dep.
PLUMBING = {"auxcut", "auxcut.core", "auxcut.core.io", "auxcut.core.paths", "auxcut.core.tracking", "auxcut.pipeline",
            "auxcut.pipeline.stage", "auxcut.pipeline.params", "auxcut.variants.checks",
            # the sub-packages' __init__ files hold only a docstring
            "auxcut.data", "auxcut.nets", "auxcut.method", "auxcut.variants", "auxcut.reports", "auxcut.apps"}


PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def imported_modules(script) -> set[str]:
    """auxcut modules the script imports, directly or through other auxcut modules."""
    found: set[str] = set()
    todo = [script]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("auxcut")):
                continue
            names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            for module in names:
                file = module_file(module)
                if file is not None and module not in found:
                    found.add(module)
                    if module not in PLUMBING:  # what plumbing imports (the params checks' class names) is its own
                        todo.append(file)
    return found


def module_file(module: str):
    base = REPO / module.replace(".", "/")
    for file in (base.with_suffix(".py"), base / "__init__.py"):
        if file.exists():
            return file
    return None


def declared(module: str, deps: set[str]) -> bool:
    """A module is covered by its own file or by a declared package folder that holds it."""
    parts = module.split(".")
    return f"{'/'.join(parts)}.py" in deps or any("/".join(parts[:k]) in deps for k in range(2, len(parts) + 1))


def test_the_nine_stages_in_method_order_then_the_variants():
    stages = dvc_stages()
    assert list(stages) == METHOD + VARIANTS
    for name, stage in stages.items():
        assert stage["cmd"] == f"python stages/{name}.py"


def test_each_stage_declares_its_script_modules_and_metrics():
    for name, stage in dvc_stages().items():
        script = REPO / "stages" / f"{name}.py"
        deps = set(stage["deps"])
        assert f"stages/{name}.py" in deps
        for module in imported_modules(script) - PLUMBING:
            assert declared(module, deps), f"{name} imports {module} but does not declare it"
        assert stage["metrics"] == [{f"metrics/{name}.json": {"cache": False}}]


def test_declared_params_exist_and_are_read():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, stage in dvc_stages().items():
        source = (REPO / "stages" / f"{name}.py").read_text()
        for dotted in stage.get("params", []):
            node = params
            for key in dotted.split("."):
                assert key in node, f"{name} declares unknown param {dotted}"
                node = node[key]
            assert f"p.{dotted}" in source or f"params.{dotted}" in source, f"{name} declares {dotted} but never reads it"


def params_read(file, in_stage_script: bool) -> set[str]:
    """The dotted params (e.g. head.C) a file reads: attribute chains on the stage's params (`stage.params.x.y`, or
    `params.x.y`, or in a stage script `p.x.y`), cut at the deepest key params.yaml has. A section passed on whole
    (`p.aux`) is a read of the whole section."""
    roots = {"p", "params"} if in_stage_script else {"params"}
    tree = ast.parse(file.read_text())
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}  # p.head of p.head.C
    reads = set()
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        chain = []
        while isinstance(node, ast.Attribute):
            if node.attr == "params" and isinstance(node.value, ast.Name):  # stage.params.x reads x
                node = ast.Name("params")
                break
            chain.insert(0, node.attr)
            node = node.value
        if not (isinstance(node, ast.Name) and node.id in roots and chain and chain[0] in PARAMS):
            continue
        dotted, section = [], PARAMS
        for key in chain:
            if not (isinstance(section, dict) and key in section):
                break
            dotted.append(key)
            section = section[key]
        reads.add(".".join(dotted))
    return reads


def paths_used(file) -> set[str]:
    """The files and folders named by auxcut.core.paths (paths.X) in a file, less the metrics and plots folders (the
    stage's own metrics and plots, which dvc.yaml declares beside its outs)."""
    names = {node.attr for node in ast.walk(ast.parse(file.read_text()))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "paths"}
    return {str(getattr(paths, name)) for name in names if name.isupper() and name not in {"METRICS", "PLOTS"}}


def stage_files(name: str) -> list:
    """The stage's script and the auxcut modules it imports (less the plumbing): where what it reads is named."""
    script = REPO / "stages" / f"{name}.py"
    return [script] + [module_file(m) for m in sorted(imported_modules(script) - PLUMBING)]


def covered(path: str, declared_paths: set[str]) -> bool:
    """A path is covered by itself or by a declared folder above it."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared_paths)


def test_every_param_a_stage_reads_is_declared():
    """Every section of params.yaml counts (not a list kept here), and a read must sit under a declared param: a
    stage that declares head.type and reads head.C would not re-run when head.C changes."""
    for name, stage in dvc_stages().items():
        declared_params = stage.get("params", [])
        for index, file in enumerate(stage_files(name)):
            for read in params_read(file, in_stage_script=index == 0):
                assert any(read == d or read.startswith(d + ".") for d in declared_params), (
                    f"{name} reads {read} in {file.relative_to(REPO)} but declares only {declared_params}")


def test_every_file_a_stage_names_is_a_dep_or_an_out():
    """Each paths.X the stage's script (or a module it imports) uses is among its deps or outs: a data file read but
    not declared would leave the stage stale-but-green when that file changes."""
    for name, stage in dvc_stages().items():
        declared_paths = set(stage["deps"]) | {o if isinstance(o, str) else next(iter(o)) for o in stage.get("outs", [])}
        for file in stage_files(name):
            for path in paths_used(file):
                assert covered(path, declared_paths), f"{name} uses {path} in {file.relative_to(REPO)}, not a dep or out"


def test_the_param_check_finds_an_undeclared_read(tmp_path):
    """The checks above see through a stage script's aliases: p = stage.params, and a section read deeper."""
    script = tmp_path / "stage.py"
    script.write_text("p, cfg = stage.params, stage.params.exits\nhead = make(p.head.C, p.data.split.train)\n"
                      "x = stage.params.fairness\nlog(p.seed)\nother.params\n")
    assert params_read(script, in_stage_script=True) == {"head.C", "data.split.train", "exits", "fairness", "seed"}
    script.write_text("x = paths.CUT / 'y'\nz = paths.PLOTS / 'a.png'\n")
    assert paths_used(script) == {str(paths.CUT)}
    assert covered("data/prepared/samples.csv", {"data/prepared"}) and not covered("data/cut.json", {"data/cut"})


def test_prepare_depends_on_the_data_set():
    # data.path is interpolated, so whatever data set params.yaml names is hashed by DVC: changing its
    # contents (not only the param) makes prepare, and so everything after it, stale.
    assert "${data.path}" in dvc_stages()["prepare"]["deps"]


def test_outputs_match_the_package_paths():
    outs = {o if isinstance(o, str) else next(iter(o)) for s in dvc_stages().values() for o in s.get("outs", [])}
    expected = {str(getattr(paths, name)) for name in dir(paths) if name.isupper() and name not in {"METRICS", "PLOTS"}}
    assert outs == expected


def test_each_plot_is_declared_once():
    """`dvc plots show` draws a plot as often as dvc.yaml names it: the top-level list names each once."""
    top = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    names = [p if isinstance(p, str) else next(iter(p)) for p in top]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
