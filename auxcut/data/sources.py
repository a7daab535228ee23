"""The data sources: scikit-learn's digits, the official MNIST, UTKFace faces, or any folder of class sub-folders,
each loaded into a `Dataset` and split into seeded, stratified train / val / test (MNIST keeps its official test set)."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from auxcut import AuxcutError
from auxcut.data import coarse, faces, mnist
from auxcut.data.prepared import SPLITS, Dataset

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def decode_image(data: bytes | Path, size: int, channels: int, where: str) -> np.ndarray:
    """Decode one image file to uint8 (C, size, size); an unreadable file is a one-line error."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            mode = "L" if channels == 1 else "RGB"
            img.draft(mode, (size, size))  # lets the JPEG decoder downscale while decoding
            img = img.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    # DecompressionBombError: an image so large that decoding it would take gigabytes, which Pillow refuses
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise AuxcutError(f"{where}: cannot read image ({exc.__class__.__name__}: {exc})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def load_digits(path: Path, image_size: int) -> Dataset:
    """Handwritten 8x8 digits in scikit-learn's digits.csv.gz layout: per row 64 pixel values 0..16, then
    the digit. The repository keeps scikit-learn's copy (1,797 images) at data/digits.csv.gz, so that the
    default data is a file DVC tracks like any other data set. The group is the digit."""
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise AuxcutError(f"data.path: {path} is not a readable digits CSV ({exc.__class__.__name__}: {exc})") from None
    if table.shape[1] != 65:
        raise AuxcutError(f"data.path: {path} is not a digits CSV (expected rows of 64 pixel values 0-16 and a digit 0-9, "
                          f"got {table.shape[1]} columns)")
    valid = np.isin(table, np.arange(17))  # a NaN is never valid
    valid[:, -1] = np.isin(table[:, -1], np.arange(10))
    if not valid.all():
        row, column = np.argwhere(~valid)[0]
        what = "the digit is a whole number 0-9" if column == 64 else "pixels are whole numbers 0-16"
        raise AuxcutError(f"data.path: {path} is not a digits CSV: row {row + 1}, column {column + 1}: "
                          f"{table[row, column]:g} ({what})")
    pixels, labels = table[:, :-1], table[:, -1]
    images = (pixels.reshape(-1, 1, 8, 8) * (255.0 / 16.0)).round().astype(np.uint8)
    if image_size != images.shape[-1]:
        images = np.stack([resize_gray(img[0], image_size)[None] for img in images])
    classes = [str(d) for d in range(10)]
    labels = labels.astype(np.int64)
    samples = pd.DataFrame({"source": [f"digits[{i}]" for i in range(len(labels))], "label": labels})
    samples["group_digit"] = [classes[y] for y in labels]
    return Dataset(images=images, samples=samples, classes=classes)


def resize_gray(gray: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_mnist(path: Path, image_size: int, max_per_class: int = 0, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """The official MNIST files in the folder `path`: the train part's rows, then the test part's, each subsampled to
    at most `max_per_class` images per digit (seeded) on its own, and which rows are the official test set. Images
    are 28x28, resized (bilinear) where image_size differs. The group is the digit, as for digits."""
    images, labels, sources, test = [], [], [], []
    for part in mnist.PARTS:
        part_images, part_labels = mnist.read(path, part)
        keep = select_per_class(part_labels, max_per_class, seed)
        images.append(part_images[keep])
        labels.append(part_labels[keep])
        sources += [f"{part}[{i}]" for i in keep]  # the image's index in its official file
        test.append(np.full(len(keep), part == "t10k"))
    stacked = np.concatenate(images)
    if image_size != mnist.SIDE:
        stacked = np.stack([resize_gray(img[0], image_size)[None] for img in stacked])
    classes = [str(d) for d in range(10)]
    samples = pd.DataFrame({"source": sources, "label": np.concatenate(labels)})
    samples["group_digit"] = [classes[y] for y in samples["label"]]
    return Dataset(images=np.ascontiguousarray(stacked), samples=samples, classes=classes), np.concatenate(test)


def _utkface_names(path: Path) -> list[str]:
    """Every .jpg in a UTKFace directory or archive, in reading order (for an archive: one pass over headers)."""
    if path.is_dir():
        return [f.relative_to(path).as_posix() for f in sorted(path.rglob("*.jpg"))]
    try:
        with tarfile.open(path, "r:*") as archive:
            return [m.name for m in archive if m.isfile() and m.name.endswith(".jpg")]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AuxcutError(f"data.path: {path} is not a readable directory or tar archive ({exc})") from None


def _utkface_contents(path: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) for the wanted files, in reading order."""
    if path.is_dir():
        for name in sorted(wanted):
            yield name, (path / name).read_bytes()
        return
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.name in wanted:
                handle = archive.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()


def select_per_class(labels: np.ndarray, max_per_class: int, seed: int) -> np.ndarray:
    """Indices of at most `max_per_class` samples of each class (seeded), in their original order; 0 keeps all."""
    if max_per_class <= 0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == k))[:max_per_class] for k in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def load_utkface(path: Path, scheme: faces.ClassScheme, image_size: int, max_per_class: int = 0,
                 seed: int = 0, workers: int = 2) -> Dataset:
    """UTKFace faces from a directory or the official UTKFace.tar.gz, read in place.

    Two passes: the names decide the labels and which files are kept, then only those are decoded,
    straight into one preallocated uint8 array (peak memory ~ the array itself: 0.3 GB at 64 px).
    """
    rows, skipped = [], Counter()
    for name in _utkface_names(path):
        labels = faces.parse_name(Path(name).name)
        if isinstance(labels, str):
            skipped[f"malformed name: {labels}"] += 1
            continue
        rows.append({"member": name, "source": Path(name).name, "label": faces.class_index(labels, scheme),
                     "age": labels.age, "group_race": faces.RACES[labels.race],
                     "group_gender": faces.GENDERS[labels.gender], "group_age": faces.AGE_BUCKETS[labels.age_bucket]})
    if not rows:
        raise AuxcutError(f"data.path: no UTKFace images (age_gender_race_datetime.jpg.chip.jpg) found in {path}")
    samples = pd.DataFrame(rows)
    samples = samples.iloc[select_per_class(samples["label"].to_numpy(), max_per_class, seed)].reset_index(drop=True)
    position = {member: i for i, member in enumerate(samples["member"])}
    images = np.empty((len(samples), 3, image_size, image_size), dtype=np.uint8)

    def decode_into(item: tuple[str, bytes]) -> None:
        member, contents = item
        images[position[member]] = decode_image(contents, image_size, 3, f"{path}:{member}")

    # Pillow releases the GIL while decoding, so threads use every core while the archive streams in.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        items = _utkface_contents(path, set(position))
        for _ in tqdm(pool.map(decode_into, items), total=len(position), desc="decode UTKFace", unit="img", mininterval=2):
            pass
    return Dataset(images, samples.drop(columns="member"), faces.class_names(scheme), dict(skipped))


def load_imagefolder(path: Path, groups_csv: Path | None, image_size: int) -> Dataset:
    """One sub-folder per class; optional CSV with a `path` column (relative to the root) and group columns."""
    if not path.is_dir():
        raise AuxcutError(f"data.path: {path} is a file; data.source imagefolder needs a folder with one sub-folder per class")
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(f, i) for i, d in enumerate(class_dirs) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise AuxcutError(f"data.path: {path} has no class sub-folders with images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = [d.name for d in class_dirs]
    if len(classes) < 2:  # refused before any training: the confusion graph and its cut need two classes
        raise AuxcutError(f"data.path: {path} has {len(classes)} class ({', '.join(classes)}); the method needs at "
                          f"least 2, one sub-folder per class")
    images = np.stack([decode_image(f, image_size, 3, str(f)) for f, _ in tqdm(files, desc="decode images", unit="img", mininterval=2)])
    samples = pd.DataFrame({"source": [f.relative_to(path).as_posix() for f, _ in files], "label": [i for _, i in files]})
    groups = None if groups_csv is None else _read_groups(groups_csv)
    if groups is None or len(groups.columns) == 1:  # no group columns: each image's group is its class
        samples["group_class"] = [classes[i] for i in samples["label"]]
    else:
        samples = samples.merge(_matched_groups(groups_csv, groups, samples["source"]), on="source", how="left")
    return Dataset(images, samples, classes)


def _read_groups(groups_csv: Path) -> pd.DataFrame:
    """The groups CSV: a `path` column and one column per group attribute (none in data/no_groups.csv)."""
    if not groups_csv.is_file():
        raise AuxcutError(f"data.groups_csv: {groups_csv} not found")
    try:
        groups = pd.read_csv(groups_csv, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise AuxcutError(f"data.groups_csv: {groups_csv} is not a readable CSV ({exc})") from None
    if "path" not in groups.columns:
        raise AuxcutError(f"data.groups_csv: {groups_csv} needs a 'path' column (and one column per group attribute)")
    return groups


def _matched_groups(groups_csv: Path, groups: pd.DataFrame, sources: pd.Series) -> pd.DataFrame:
    """The group columns of each image, as `group_<column>`; every image needs a row."""
    missing = sorted(set(sources) - set(groups["path"]))
    if missing:
        raise AuxcutError(f"data.groups_csv: {groups_csv} has no row for {len(missing)} image(s), e.g. {missing[0]!r}")
    # A blank attribute is its own group, "(missing)": dropping those rows would hide who they are.
    groups = groups.rename(columns={"path": "source"}).drop_duplicates("source").fillna("(missing)")
    return groups.rename(columns={c: f"group_{c}" for c in groups.columns if c != "source"})


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int, classes: list[str],
                     fixed_test: np.ndarray | None = None) -> np.ndarray:
    """Seeded, stratified train/val/test assignment; every class must land in every split. Where the data set has
    its own test set (`fixed_test`, a bool per image), that is the test split, and val is carved from the rest in the
    ratio val : train of `fractions` (its test fraction is then unused)."""
    counts = np.bincount(labels, minlength=len(classes))
    for label, count in enumerate(counts):
        if count < len(SPLITS):
            raise AuxcutError(f"data: class {classes[label]!r} has {count} image(s); each class needs at least 3 (one per split)")
    index = np.arange(len(labels))
    try:
        if fixed_test is None:
            rest, test = train_test_split(index, test_size=fractions["test"], stratify=labels, random_state=seed)
        else:
            rest, test = index[~fixed_test], index[fixed_test]
        val_share = fractions["val"] / (fractions["train"] + fractions["val"])
        train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=seed)
    except ValueError as exc:  # e.g. fewer test images than classes
        raise AuxcutError(f"data.split: {len(labels)} images in {len(classes)} classes cannot be split "
                          f"{fractions} with every class in every split ({exc})") from None
    split = np.empty(len(labels), dtype=object)
    split[train], split[val], split[test] = "train", "val", "test"
    for name in SPLITS:
        present = np.bincount(labels[split == name], minlength=len(classes))
        if (present == 0).any():
            empty = classes[int(np.argmin(present))]
            raise AuxcutError(f"data: class {empty!r} has no {name} images with split {fractions}; it needs more images")
    return split


def prepare(source: str, path: Path, scheme: faces.ClassScheme, groups_csv: Path | None,
            image_size: int, fractions: dict[str, float], seed: int, max_per_class: int = 0,
            coarse_groups: list[list[int]] | None = None) -> Dataset:
    """Load the chosen source (at most `max_per_class` images per class when > 0) and assign the splits; images are
    grouped by the groups CSV's columns (an image folder only), or by the source's own attributes. `coarse_groups`
    (data.coarse) then merges the classes, after the split: it is stratified by the original classes, so a merged data
    set has the same train, val and test images as the unmerged one."""
    if not path.exists():
        wanted = {"digits": "a digits CSV", "mnist": "the folder of the official MNIST .gz files"}.get(
            source, "a directory or archive")
        raise AuxcutError(f"data.path: {path} does not exist (data.source={source} needs {wanted})")
    if source != "imagefolder" and groups_csv is not None:
        extra = [c for c in _read_groups(groups_csv).columns if c != "path"]
        if extra:
            raise AuxcutError(f"data.groups_csv: {groups_csv} has group columns ({', '.join(extra)}), but data.source "
                              f"{source} brings its own groups and reads none from a CSV: set data.groups_csv to "
                              f"data/no_groups.csv")
    fixed_test = None
    if source == "digits":
        data = _subsample(load_digits(path, image_size), max_per_class, seed)
    elif source == "mnist":  # subsampled per official part, which keeps its own test set
        data, fixed_test = load_mnist(path, image_size, max_per_class, seed)
    elif source == "utkface":  # subsampled before decoding: the archive is large
        data = load_utkface(path, scheme, image_size, max_per_class, seed)
    else:
        data = _subsample(load_imagefolder(path, groups_csv, image_size), max_per_class, seed)
    data.samples["label"] = data.samples["label"].astype(np.int64)
    data.samples["class_name"] = [data.classes[y] for y in data.samples["label"]]
    data.samples["split"] = stratified_split(data.samples["label"].to_numpy(), fractions, seed, data.classes, fixed_test)
    return coarse.merge(data, coarse_groups) if coarse_groups else data


def _subsample(data: Dataset, max_per_class: int, seed: int) -> Dataset:
    keep = select_per_class(data.samples["label"].to_numpy(), max_per_class, seed)
    if len(keep) == len(data.samples):
        return data
    return Dataset(data.images[keep], data.samples.iloc[keep].reset_index(drop=True), data.classes, data.skipped)
