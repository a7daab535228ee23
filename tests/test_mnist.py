"""data.source mnist on the official files in ../shared/datasets/mnist, the one-line errors for broken files, and the
partial-MNIST sets of the occlude stage pixel by pixel."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from auxcut import AuxcutError
from auxcut.data import mnist, prepared, sources
from auxcut.pipeline.params import load_params
from conftest import REPO

MNIST_DIR = REPO.parent / "shared" / "datasets" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="the shared MNIST files are not beside the repository (../shared/datasets/mnist)")

# The shared README's class counts, digits 0-9
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}  # MNIST uses train : val only: val is 1/4 of the official train set


def _prepare(max_per_class: int = 0, seed: int = 0, image_size: int = 28) -> prepared.Dataset:
    return sources.prepare("mnist", MNIST_DIR, "age_race", None, image_size, SPLIT, seed, max_per_class)


def _per_class(data: prepared.Dataset, split: str) -> list[int]:
    return np.bincount(data.samples["label"][data.samples["split"] == split], minlength=10).tolist()


def _raw_test_images() -> np.ndarray:
    raw = gzip.decompress((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)


@needs_mnist
def test_the_full_read_keeps_the_official_split_and_carves_val_from_train():
    data = _prepare()
    assert data.images.shape == (70_000, 1, 28, 28) and data.images.dtype == np.uint8
    assert data.classes == [str(d) for d in range(10)]
    s = data.samples
    assert _per_class(data, "test") == TEST_COUNTS
    train_and_val = np.add(_per_class(data, "train"), _per_class(data, "val"))
    assert train_and_val.tolist() == TRAIN_COUNTS
    assert s["split"].value_counts().to_dict() == {"train": 45_000, "val": 15_000, "test": 10_000}
    assert s["source"][s["split"] == "test"].str.startswith("t10k[").all()  # val and train come from the train file
    assert not s["source"][s["split"] != "test"].str.startswith("t10k[").any()
    val_share = np.array(_per_class(data, "val")) / TRAIN_COUNTS
    assert np.allclose(val_share, 0.25, atol=0.001)  # stratified
    assert (s["group_digit"] == s["label"].astype(str)).all()
    # the test set is the official one, in the official order: its first image is the file's first image, byte for byte
    test_rows = data.indices("test")
    assert s["source"][test_rows[0]] == "t10k[0]"
    assert np.array_equal(data.images[test_rows[0], 0], _raw_test_images()[0])
    assert s["label"][test_rows].tolist()[:5] == [7, 2, 1, 0, 4]  # the first labels of t10k-labels-idx1-ubyte


@needs_mnist
def test_max_per_class_caps_each_official_set_seeded_and_stratified():
    data = _prepare(max_per_class=20, seed=3)
    assert _per_class(data, "test") == [20] * 10
    assert _per_class(data, "train") == [15] * 10 and _per_class(data, "val") == [5] * 10
    assert data.samples.equals(_prepare(max_per_class=20, seed=3).samples)
    other = _prepare(max_per_class=20, seed=4)
    assert set(data.samples["source"]) != set(other.samples["source"])
    # every kept image is the one its source names, in either file
    raw_test = _raw_test_images()
    for row in data.indices("test")[:5]:
        index = int(data.samples["source"][row].removeprefix("t10k[").removesuffix("]"))
        assert np.array_equal(data.images[row, 0], raw_test[index])


@needs_mnist
def test_other_image_sizes_are_resized():
    data = _prepare(max_per_class=8, image_size=16)
    assert data.images.shape == (160, 1, 16, 16)
    assert data.images.max() > 200  # the strokes survive the bilinear resize


def _write(path: Path, contents: bytes) -> None:
    path.write_bytes(gzip.compress(contents, compresslevel=1))


def _idx_images(count: int, magic: int = mnist.IMAGES_MAGIC, rows: int = 28) -> bytes:
    header = np.array([magic, count, rows, 28], dtype=">u4").tobytes()
    return header + bytes(count * rows * 28)


def _idx_labels(count: int, magic: int = mnist.LABELS_MAGIC) -> bytes:
    return np.array([magic, count], dtype=">u4").tobytes() + bytes(i % 10 for i in range(count))


@pytest.fixture(scope="module")
def well_formed(tmp_path_factory) -> Path:
    """Well-formed idx files with the official counts: blank images, digits 0-9 in turn."""
    folder = tmp_path_factory.mktemp("mnist")
    for images, labels, count in mnist.PARTS.values():
        _write(folder / images, _idx_images(count))
        _write(folder / labels, _idx_labels(count))
    return folder


@pytest.fixture
def broken(well_formed, tmp_path) -> Path:
    """A copy of the well-formed files, for a test to break."""
    for name in mnist.FILES:
        shutil.copyfile(well_formed / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("breaking, message", [
    (lambda d: _write(d / "t10k-images-idx3-ubyte.gz", _idx_images(10_000, magic=2049)),
     r"t10k-images-idx3-ubyte\.gz: magic number 2049, expected 2051 \(an MNIST idx images file\)"),
    (lambda d: _write(d / "t10k-labels-idx1-ubyte.gz", _idx_labels(10_000, magic=2051)),
     r"t10k-labels-idx1-ubyte\.gz: magic number 2051, expected 2049 \(an MNIST idx labels file\)"),
    (lambda d: _write(d / "t10k-images-idx3-ubyte.gz", _idx_images(10_000)[:-784]),
     r"t10k-images-idx3-ubyte\.gz: the header says 10000 items \(7840000 bytes after the header\), but 7839216 bytes "
     r"follow; truncated"),
    (lambda d: _write(d / "t10k-labels-idx1-ubyte.gz", _idx_labels(9_999)),
     r"t10k-images-idx3-ubyte\.gz has 10000 images but t10k-labels-idx1-ubyte\.gz has 9999 labels; expected 10000"),
    (lambda d: (_write(d / "t10k-images-idx3-ubyte.gz", _idx_images(500)), _write(d / "t10k-labels-idx1-ubyte.gz", _idx_labels(500))),
     r"t10k-images-idx3-ubyte\.gz: 500 images, expected the official 10000"),
    (lambda d: (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_images(10_000))[:-100]),
     r"t10k-images-idx3-ubyte\.gz: not a complete gzip file \(EOFError"),
    (lambda d: (d / "t10k-images-idx3-ubyte.gz").write_bytes(_idx_images(10)),
     r"t10k-images-idx3-ubyte\.gz: not a complete gzip file"),
    (lambda d: _write(d / "t10k-images-idx3-ubyte.gz", _idx_images(10_000, rows=32)),
     r"t10k-images-idx3-ubyte\.gz: images of 32x28 pixels, expected MNIST's 28x28"),
    (lambda d: _write(d / "train-labels-idx1-ubyte.gz", b"\0\0\x08"),
     r"train-labels-idx1-ubyte\.gz: 3 bytes, shorter than an idx header \(8 bytes\)"),
    (lambda d: _write(d / "train-labels-idx1-ubyte.gz", _idx_labels(60_000)[:-1] + b"\x0a"),
     r"train-labels-idx1-ubyte\.gz: label 10 at item 59999, expected digits 0-9"),
    (lambda d: (d / "train-labels-idx1-ubyte.gz").unlink(),
     r"^data\.path: .*train-labels-idx1-ubyte\.gz not found \(data\.source mnist needs the folder with the official files"),
])
def test_a_broken_file_is_one_line_naming_it(broken, breaking, message):
    breaking(broken)
    with pytest.raises(AuxcutError, match=message) as caught:
        sources.prepare("mnist", broken, "age_race", None, 28, SPLIT, 0, 2)
    assert "\n" not in str(caught.value)


def test_a_file_or_missing_folder_as_data_path_is_one_line(tmp_path):
    with pytest.raises(AuxcutError, match=r"^data\.path: .* is not a folder \(data\.source mnist needs the folder"):
        sources.prepare("mnist", REPO / "params.yaml", "age_race", None, 28, SPLIT, 0)
    with pytest.raises(AuxcutError, match=r"^data\.path: .*nowhere does not exist \(data\.source=mnist needs the "
                                          r"folder of the official MNIST \.gz files\)"):
        sources.prepare("mnist", tmp_path / "nowhere", "age_race", None, 28, SPLIT, 0)


def test_the_blank_files_read_as_mnist(broken):
    """The fixture's files are well formed, so the errors above come from what each test broke."""
    data = sources.prepare("mnist", broken, "age_race", None, 28, SPLIT, 0, 4)
    assert data.images.shape == (2 * 40, 1, 28, 28)  # 4 of each digit from each official set


def test_mnist_params_know_the_digits(params_dict, tmp_path):
    params_dict["data"].update(source="mnist", image_size=28)
    params_dict["attributes"]["names"] = ["age"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict))
    with pytest.raises(AuxcutError, match=r"attributes\.names has age, not an attribute of this data \(expected some "
                                          r"of: digit, cut, class"):
        load_params(path)
    params_dict["attributes"]["names"] = ["digit"]
    params_dict["exits"]["groups"] = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 10]]
    path.write_text(yaml.safe_dump(params_dict))
    with pytest.raises(AuxcutError, match=r"exits\.groups names classes \[10\] but the data has 10"):
        load_params(path)


# --- the partial-MNIST sets from the occlude stage --------------------------------------------------------------


def _definitions() -> dict[str, np.ndarray]:
    """The paper's sets on the 28x28 grid, written out from their definitions (True = removed)."""
    rows, cols = np.indices((28, 28))
    top, left = rows < 14, cols < 14
    squares = np.zeros((28, 28), dtype=bool)
    for r, c in ((6, 6), (18, 11), (8, 17)):  # three non-overlapping 9x9 squares
        squares[r:r + 9, c:c + 9] = True
    return {"horizontal": top, "vertical": left, "diagonal": (top & ~left) | (~top & left), "triple": squares}


def test_the_definitions_remove_the_stated_shares():
    removed = {name: int(mask.sum()) for name, mask in _definitions().items()}
    assert removed == {"horizontal": 392, "vertical": 392, "diagonal": 392, "triple": 3 * 81}  # 50%, 50%, 2 x 25%, 31%


def _run_stage(name: str, workdir: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd=workdir, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@needs_mnist
def test_the_occlude_stage_gives_the_partial_mnist_sets_pixel_by_pixel(params_dict, tmp_path):
    """prepare and occlude on a small MNIST subset: each set's images equal the test images with exactly the defined
    pixels set to 0."""
    params_dict["data"].update(source="mnist", path=str(MNIST_DIR), image_size=28, max_per_class=5,
                              groups_csv=str(REPO / "data" / "no_groups.csv"))
    params_dict["occlusion"]["sets"] = ["horizontal", "vertical", "diagonal", "triple", "patches"]
    params_dict["tracking"].update(enabled=False, required=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_dict))
    _run_stage("prepare", tmp_path)
    _run_stage("occlude", tmp_path)
    data = prepared.load(tmp_path / "data" / "prepared")
    occluded = np.load(tmp_path / "data" / "occluded.npz")
    test = data.indices("test")
    assert np.array_equal(occluded["rows"], test) and len(test) == 50
    assert data.samples["source"][test].str.startswith("t10k[").all()
    from auxcut.variants import occlusion

    images = np.asarray(data.images[test])
    for name, removed in _definitions().items():
        assert np.array_equal(occluded[name], removed), name
        out = occlusion.occlude(images, occluded[name])
        assert (out[:, :, removed] == 0).all() and np.array_equal(out[:, :, ~removed], images[:, :, ~removed]), name
    assert occluded["patches"].shape == (50, 28, 28)
    metrics = json.loads((tmp_path / "metrics" / "occlude.json").read_text())
    assert metrics["image_size"] == [28, 28]
    assert metrics["removed_share"]["triple"] == pytest.approx(243 / 784)
