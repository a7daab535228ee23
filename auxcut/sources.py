"""The data sources: scikit-learn's digits, UTKFace faces, or any folder of class sub-folders, each
loaded into a `Dataset` and split into seeded, stratified train / val / test."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from auxcut import AuxcutError, utkface
from auxcut.data import SPLITS, Dataset

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def decode_image(data: bytes | Path, size: int, channels: int, where: str) -> np.ndarray:
    """Decode one image file to uint8 (C, size, size); an unreadable file is a one-line error."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            mode = "L" if channels == 1 else "RGB"
            img.draft(mode, (size, size))  # lets the JPEG decoder downscale while decoding
            img = img.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise AuxcutError(f"{where}: cannot read image ({exc.__class__.__name__}: {exc})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def load_digits(image_size: int) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes); the group is the digit."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]  # pixel values are 0..16
    if image_size != images.shape[-1]:
        images = np.stack([resize_gray(img[0], image_size)[None] for img in images])
    classes = [str(c) for c in bunch.target_names]
    labels = bunch.target.astype(np.int64)
    samples = pd.DataFrame({"source": [f"digits[{i}]" for i in range(len(labels))], "label": labels})
    samples["group_digit"] = [classes[y] for y in labels]
    return Dataset(images=images, samples=samples, classes=classes)


def resize_gray(gray: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _utkface_files(path: Path) -> Iterator[tuple[str, str, bytes | Path]]:
    """(file name, where, contents or path) for every JPEG of a UTKFace directory or .tar.gz archive."""
    if path.is_dir():
        for file in sorted(path.rglob("*.jpg")):
            yield file.name, str(file), file
        return
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise AuxcutError(f"data.path: {path} is not a readable directory or tar archive ({exc})") from None
    with archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".jpg"):
                handle = archive.extractfile(member)
                if handle is not None:
                    yield Path(member.name).name, f"{path}:{member.name}", handle.read()


def load_utkface(path: Path, scheme: utkface.ClassScheme, image_size: int) -> Dataset:
    """UTKFace faces from a directory or the official UTKFace.tar.gz, read in place."""
    images, rows, skipped = [], [], Counter()
    for name, where, contents in tqdm(_utkface_files(path), desc="decode UTKFace", unit="img", mininterval=2):
        labels = utkface.parse_name(name)
        if isinstance(labels, str):
            skipped[f"malformed name: {labels}"] += 1
            continue
        images.append(decode_image(contents, image_size, 3, where))
        rows.append(
            {
                "source": name,
                "label": utkface.class_index(labels, scheme),
                "age": labels.age,
                "group_race": utkface.RACES[labels.race],
                "group_gender": utkface.GENDERS[labels.gender],
                "group_age": utkface.AGE_BUCKETS[labels.age_bucket],
            }
        )
    if not rows:
        raise AuxcutError(f"data.path: no UTKFace images (age_gender_race_datetime.jpg.chip.jpg) found in {path}")
    return Dataset(np.stack(images), pd.DataFrame(rows), utkface.class_names(scheme), dict(skipped))


def load_imagefolder(path: Path, groups_csv: Path | None, image_size: int) -> Dataset:
    """One sub-folder per class; optional CSV with a `path` column (relative to the root) and group columns."""
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(f, i) for i, d in enumerate(class_dirs) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise AuxcutError(f"data.path: {path} has no class sub-folders with images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images = np.stack([decode_image(f, image_size, 3, str(f)) for f, _ in tqdm(files, desc="decode images", unit="img", mininterval=2)])
    samples = pd.DataFrame({"source": [f.relative_to(path).as_posix() for f, _ in files], "label": [i for _, i in files]})
    classes = [d.name for d in class_dirs]
    if groups_csv is None:
        samples["group_class"] = [classes[i] for i in samples["label"]]
    else:
        samples = samples.merge(_read_groups(groups_csv, samples["source"]), on="source", how="left")
    return Dataset(images, samples, classes)


def _read_groups(groups_csv: Path, sources: pd.Series) -> pd.DataFrame:
    if not groups_csv.is_file():
        raise AuxcutError(f"data.groups_csv: {groups_csv} not found")
    try:
        groups = pd.read_csv(groups_csv, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise AuxcutError(f"data.groups_csv: {groups_csv} is not a readable CSV ({exc})") from None
    if "path" not in groups.columns or len(groups.columns) < 2:
        raise AuxcutError(f"data.groups_csv: {groups_csv} needs a 'path' column and at least one group column")
    missing = sorted(set(sources) - set(groups["path"]))
    if missing:
        raise AuxcutError(f"data.groups_csv: {groups_csv} has no row for {len(missing)} image(s), e.g. {missing[0]!r}")
    # A blank attribute is its own group, "(missing)": dropping those rows would hide who they are.
    groups = groups.rename(columns={"path": "source"}).drop_duplicates("source").fillna("(missing)")
    return groups.rename(columns={c: f"group_{c}" for c in groups.columns if c != "source"})


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int, classes: list[str]) -> np.ndarray:
    """Seeded, stratified train/val/test assignment; every class must land in every split."""
    counts = np.bincount(labels, minlength=len(classes))
    for label, count in enumerate(counts):
        if count < len(SPLITS):
            raise AuxcutError(f"data: class {classes[label]!r} has {count} image(s); each class needs at least 3 (one per split)")
    index = np.arange(len(labels))
    try:
        rest, test = train_test_split(index, test_size=fractions["test"], stratify=labels, random_state=seed)
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


def prepare(source: str, path: Path | None, scheme: utkface.ClassScheme, groups_csv: Path | None,
            image_size: int, fractions: dict[str, float], seed: int) -> Dataset:
    """Load the chosen source, drop unused classes (UTKFace), and assign the splits."""
    if source == "digits":
        data = load_digits(image_size)
    else:
        if path is None or not path.exists():
            raise AuxcutError(f"data.path: {path or '(empty)'} does not exist (data.source={source} needs a directory or archive)")
        data = load_utkface(path, scheme, image_size) if source == "utkface" else load_imagefolder(path, groups_csv, image_size)
    data.samples["label"] = data.samples["label"].astype(np.int64)
    data.samples["class_name"] = [data.classes[y] for y in data.samples["label"]]
    data.samples["split"] = stratified_split(data.samples["label"].to_numpy(), fractions, seed, data.classes)
    return data
