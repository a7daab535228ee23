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


def test_every_param_a_stage_reads_is_declared():
    for name, stage in dvc_stages().items():
        source = (REPO / "stages" / f"{name}.py").read_text()
        declared = stage.get("params", [])
        for section in ("seed", "data", "base", "aux", "maxcut", "head", "attributes", "exits", "fairness"):
            if f"p.{section}" in source or f"params.{section}" in source:
                assert any(d == section or d.startswith(section + ".") for d in declared), f"{name} reads {section}"


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
