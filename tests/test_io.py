"""Atomic outputs: whole or absent, and readable by whoever a plain open() would let read them."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

from auxcut import AuxcutError
from auxcut.core.io import atomic_dir, save_figure, save_npy, shows_data, write_csv, write_json


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def test_outputs_honour_the_umask_like_open(tmp_path, umask):
    """A shared machine or DVC cache: with umask 022 the others read the outputs, with 077 they do not."""
    with open(tmp_path / "plain.txt", "w"):
        pass
    os.mkdir(tmp_path / "plain")
    write_json(tmp_path / "out" / "metrics.json", {"a": 1})
    save_npy(tmp_path / "out" / "probs.npy", np.zeros(3))
    write_csv(tmp_path / "out" / "table.csv", pd.DataFrame({"a": [1]}))
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "inside.txt").write_text("x")
    assert mode(tmp_path / "plain.txt") == 0o666 & ~umask
    for name in ("metrics.json", "probs.npy", "table.csv"):
        assert mode(tmp_path / "out" / name) == mode(tmp_path / "plain.txt"), name
    assert mode(tmp_path / "folder") == mode(tmp_path / "plain") == 0o777 & ~umask


def test_a_failed_write_leaves_the_old_output(tmp_path):
    write_json(tmp_path / "metrics.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(tmp_path / "metrics.json", {"a": object()})
    assert (tmp_path / "metrics.json").read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left beside it
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("killed half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_plot_of_the_data_images_carries_its_mark_and_the_study_never_files_it(tmp_path):
    """save_figure(shows_data=True) marks the PNG itself, so the study's filing (reports/ is committed) leaves out any
    plot that draws the images, whatever its name; an unmarked plot is filed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auxcut.reports import study

    plots = tmp_path / "plots"
    for name, marked in (("occlusion/grid.png", True), ("maxcut/cut.png", False)):
        figure, ax = plt.subplots()
        ax.imshow(np.random.default_rng(0).random((8, 8)))
        save_figure(plots / name, figure, shows_data=marked)
        assert shows_data(plots / name) is marked
    study._file_figures(plots, tmp_path / "figures")
    assert [p.relative_to(tmp_path / "figures").as_posix() for p in (tmp_path / "figures").rglob("*.png")] == [
        "maxcut/cut.png"]
    with pytest.raises(AuxcutError, match=r"grid\.pdf.*\.png"):
        save_figure(tmp_path / "grid.pdf", plt.figure(), shows_data=True)
