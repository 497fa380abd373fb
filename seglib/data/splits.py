"""Deterministic patient-level splits of a dataset's records into train / val / test, and split files (id,split)."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from seglib.data.folders import DatasetDir
from seglib.data.io import DataError, read_table, write_text
from seglib.data.layout import Record, list_images, read_manifest
from seglib.data.outputs import check_output_file

SPLITS = ("train", "val", "test", "unused")  # unused: left out on purpose (e.g. a training-size study)


def split_records(records: list[Record], val_fraction: float, test_fraction: float, seed: int,
                  root: str | Path | None = None, split_file: str | Path | None = None) -> dict[str, str]:
    """id -> 'train' | 'val' | 'test'. A split file (id,split) or a manifest 'split' column wins;
    otherwise patients are shuffled with `seed` and cut by fraction, so one patient's images
    never straddle two splits."""
    if split_file is not None:
        return _read_split(Path(split_file), records)
    manifest = read_manifest(root) if root is not None else None
    split = manifest_split(manifest, DatasetDir(root).manifest_path) if manifest is not None else None
    if split is not None:
        return _validated_split(split, records, DatasetDir(root).manifest_path)
    patients = sorted({record.patient_id for record in records})
    random.Random(seed).shuffle(patients)
    n_test = round(len(patients) * test_fraction)
    n_val = max(1, round(len(patients) * val_fraction)) if val_fraction > 0 else 0
    split_of_patient = {p: "test" for p in patients[:n_test]}
    split_of_patient.update({p: "val" for p in patients[n_test:n_test + n_val]})
    return {r.id: split_of_patient.get(r.patient_id, "train") for r in records}


def manifest_split(manifest: pd.DataFrame, path: Path) -> dict[str, str] | None:
    """id -> split of a manifest's `split` column, None when it has none (or only blanks). A column
    blank for some ids is an error: half a split is a mistake, not a request for a seeded one."""
    if "split" not in manifest.columns:
        return None
    splits = manifest["split"].fillna("")
    if not (splits != "").any():
        return None
    blank = manifest["id"][splits == ""].tolist()
    if blank:
        raise DataError(f"{path}: split is blank for {len(blank)} ids, e.g. {blank[0]!r}")
    return dict(zip(manifest["id"], splits))


def read_split(path: str | Path) -> dict[str, str]:
    """id -> split name of a split file (id,split), as write_split and every run's split.csv hold it.
    An id listed twice with different splits is an error (which one would training use?)."""
    table = read_table(path, required=("id", "split"))
    split: dict[str, str] = {}
    for line, (image_id, name) in enumerate(zip(table["id"], table["split"]), start=2):
        if split.setdefault(image_id, name) != name:
            raise DataError(f"{path}: line {line}: id {image_id!r} is listed as {split[image_id]!r} and again as "
                            f"{name!r}; each id belongs to one split")
    return split


def _read_split(path: Path, records: list[Record]) -> dict[str, str]:
    return _validated_split(read_split(path), records, path)


def _validated_split(split: dict[str, str], records: list[Record], source: Path) -> dict[str, str]:
    bad = sorted({s for s in split.values() if s not in SPLITS})
    if bad:
        raise DataError(f"{source}: unknown split names {bad}; use {', '.join(SPLITS)}")
    missing = [r.id for r in records if r.id not in split]
    if missing:
        raise DataError(f"{source}: no split for {len(missing)} images, e.g. {missing[0]!r}")
    unknown = sorted(set(split) - {r.id for r in records})
    if unknown:
        raise DataError(f"{source}: id {unknown[0]!r} is not an image of the dataset ({len(unknown)} unknown ids)")
    return {r.id: split[r.id] for r in records}


def fixed_count_split(ids, n_test: int, n_val: int, seed: int = 0) -> dict[str, str]:
    """The benchmark protocol: ids sorted, shuffled with Python's random.Random(seed); the first
    n_test are test, the last n_val validation, the rest training."""
    if n_test < 0 or n_val < 0:
        raise ValueError(f"the numbers of test ({n_test}) and validation ({n_val}) images cannot be negative")
    ids = sorted(ids)
    random.Random(seed).shuffle(ids)
    if n_test + n_val >= len(ids):
        raise ValueError(f"{n_test} test + {n_val} validation images leave none of {len(ids)} for training")
    split = {i: "train" for i in ids}
    split.update({i: "test" for i in ids[:n_test]})
    split.update({i: "val" for i in ids[len(ids) - n_val:]})
    return split


def write_fixed_count_split(dataset: str | Path, out: str | Path, n_test: int, n_val: int,
                            seed: int = 0) -> dict[str, str]:
    """The fixed-count split of the dataset's images (fixed_count_split) written to `out`, a new file
    outside the dataset (never one that exists); returns it."""
    check_output_file(out, [dataset])
    split = fixed_count_split(list_images(DatasetDir(dataset).images_dir), n_test, n_val, seed)
    write_split(split, out)
    return split


def write_split(split: dict[str, str], path: str | Path) -> None:
    """The split file, complete or not at all, replacing `path` (for a file in a folder the caller
    writes, e.g. a run's split.csv; write_fixed_count_split guards a user's path)."""
    table = pd.DataFrame({"id": list(split), "split": list(split.values())})
    write_text(path, table.to_csv(index=False), overwrite=True)


def records_in(records: list[Record], split: dict[str, str], name: str) -> list[Record]:
    return [r for r in records if split[r.id] == name]
