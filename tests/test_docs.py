"""The documentation stays true: the params reference is the one the schema generates, the MkDocs site builds strictly
(no broken link, no page outside the nav), and the README stays short with a results row per system and the real DAG."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from pydantic import BaseModel

from auxcut.apps.params_reference import COMMAND, describe_bounds, describe_type, params_reference, yaml_comments
from auxcut.pipeline.params import Params
from conftest import REPO

README = REPO / "README.md"
# One results row per system of the family, found by what its first cell names.
SYSTEMS = ["max-cut aux", "its controls", "tree of cuts", "as a head", "early exits", "fine labels", "merged MNIST", "reproduction",
           "under occlusion"]


def test_params_reference_is_current():
    committed = (REPO / "docs" / "params.md").read_text()
    assert committed == params_reference(REPO / "params.yaml"), f"docs/params.md is stale: regenerate it with `{COMMAND}`"


def test_params_reference_covers_every_key_with_a_meaning():
    page = params_reference(REPO / "params.yaml")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w.]+)` \|.*\| (.*) \|$", page, re.M)}

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            key, sub = prefix + (field.alias or name), field.annotation
            yield from keys(sub, key + ".") if isinstance(sub, type) and issubclass(sub, BaseModel) else [key]

    expected = set(keys(Params))
    assert set(rows) == expected
    blank = sorted(key for key, meaning in rows.items() if not meaning.strip())
    assert not blank, f"no meaning for {blank}: add a comment beside each key in params.yaml"


def test_yaml_comments_follow_keys_and_continuation_lines():
    text = ("# opening\nseed: 0   # the seed\n\nsec:        # a section\n  key: 1   # first line\n"
            "            # second line\n  other: [1, 2]\n")
    assert yaml_comments(text) == {"": "opening", "seed": "the seed", "sec": "a section",
                                   "sec.key": "first line second line", "sec.other": ""}


def test_types_and_bounds_in_words():
    fields = Params.model_fields
    data = fields["data"].annotation.model_fields
    assert describe_type(data["source"].annotation) == "one of `digits`, `mnist`, `utkface`, `imagefolder`"
    assert describe_bounds(data["image_size"].metadata, int) == "≥ 4, ≤ 1024"
    sets = fields["occlusion"].annotation.model_fields["sets"]
    assert describe_bounds(sets.metadata, sets.annotation) == "at least 1 entry, no repeats"
    groups = fields["exits"].annotation.model_fields["groups"].annotation
    assert describe_type(groups) == "one of `tree`, `prefix`, `clusters` or list of list of int"


def test_mkdocs_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_mkdocs_strict_fails_on_a_broken_link(tmp_path):
    """The strict build is a real check: the same docs with one link pointing nowhere fail it."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    (tmp_path / "mkdocs.yml").write_text((REPO / "mkdocs.yml").read_text())
    page = docs / "index.md"
    page.write_text(page.read_text().replace("(architecture.md)", "(no-such-page.md)", 1))
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "no-such-page.md" in result.stderr, result.stderr[-3000:]


def results_rows() -> list[list[str]]:
    text = README.read_text()
    section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in table[2:]]


def test_readme_is_short_with_a_results_row_per_system():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; keep it to 200 and move detail to docs/"
    rows = results_rows()
    assert [next((s for s in SYSTEMS if s in row[0]), row[0]) for row in rows] == SYSTEMS
    for row in rows:
        assert len(row) == 6 and all(row), row  # system, claim, anchor, measured, aim met, report
        reports = re.findall(r"\]\((reports/[\w.-]+\.md)\)", row[5])
        assert reports and all((REPO / r).is_file() for r in reports), row[5]


def test_architecture_page_names_every_layer():
    page = (REPO / "docs" / "architecture.md").read_text()
    layers = sorted(p.parent.name for p in (REPO / "auxcut").glob("*/__init__.py"))
    assert [name for name in layers if f"`auxcut/{name}`" not in page] == [], "docs/architecture.md: add the new layer"


def test_readme_links_reach_files():
    """MkDocs checks the links inside docs/; the README's own (to docs/ and reports/) are checked here."""
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if "://" not in t]
    missing = [t for t in local if not (REPO / t).is_file()]
    assert local and not missing, f"README.md links to files that do not exist: {missing}"


def mermaid_edges(text: str) -> set[tuple[str, str]]:
    """Edges of the first mermaid block, written as `a --> b & c` or as dvc's `node1-->node2` with node1["a"]."""
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    names = dict(re.findall(r'(\w+)\["(\w+)"\]', block))
    edges = set()
    for source, targets in re.findall(r"^\s*(\w+)\s*-->\s*(.+)$", block, re.M):
        for target in targets.split("&"):
            edges.add((names.get(source, source), names.get(target.strip(), target.strip())))
    return edges


@pytest.mark.parametrize("page", ["README.md", "docs/method.md"])
def test_the_dag_drawn_is_dvcs(page):
    result = subprocess.run([sys.executable, "-m", "dvc", "dag", "--mermaid"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    dvc = mermaid_edges("```mermaid\n" + result.stdout + "```")
    assert dvc and mermaid_edges((REPO / page).read_text()) == dvc, f"{page}: redraw the DAG from `dvc dag --mermaid`"
