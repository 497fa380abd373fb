"""Tables meant for spreadsheets (issue #29, item 12): an image named like a formula (`=HYPERLINK(...).png`)
is a text cell in areas.csv and in evaluate's and report's tables, never a formula a spreadsheet runs
(OWASP, CSV injection: such cells get a leading single quote); numbers stay numbers, and files seglib
reads back keep the ids as they are."""

import csv

from conftest import untrained_run, write_square_dataset

from seglib.cli import main
from seglib.data.io import spreadsheet_safe
from seglib.inference.segment import segment_folder

FORMULAS = ['=HYPERLINK("http:evil","open")', "+1+2", "-2+3", "@SUM(A1)"]


def rows(path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def formula_dataset(root):
    """The square dataset with its images (and masks) named like formulas, and one plain name."""
    data = write_square_dataset(root, n=len(FORMULAS) + 1)
    for index, name in enumerate([*FORMULAS, "plain"]):
        for folder in (data / "images", data / "masks" / "left_thing", data / "masks" / "right_thing"):
            (folder / f"case{index}.png").rename(folder / f"{name}.png")
    return data


def test_formula_cells_are_quoted_and_numbers_are_not():
    assert [spreadsheet_safe(text) for text in [*FORMULAS, "\tx", "\rx"]] == \
        [f"'{text}" for text in [*FORMULAS, "\tx", "\rx"]]
    assert [spreadsheet_safe(value) for value in (-0.5, 3, "", "plain", "a=b", "'=quoted", None)] == \
        [-0.5, 3, "", "plain", "a=b", "'=quoted", None]


def test_areas_csv_holds_formula_names_as_text(hip_runs, tmp_path):
    images = formula_dataset(tmp_path / "data") / "images"
    out = segment_folder(hip_runs, images, tmp_path / "out", threshold=0.3, spacing_mm={"-2+3": 0.5})
    table = rows(out / "areas.csv")
    assert {row["id"] for row in table} == {f"'{name}" for name in FORMULAS} | {"plain"}
    assert all(float(row["area_px"]) >= 0 and row["structure"] in ("left_hip", "right_hip") for row in table)
    assert {row["area_mm2"] for row in table if row["id"] == "'-2+3"} != {""}  # the spacing found its image
    assert sorted(p.stem for p in (out / "labels").iterdir()) == sorted([*FORMULAS, "plain"])  # files: real names


def test_evaluate_and_report_tables_hold_formula_names_as_text(tmp_path):
    data = formula_dataset(tmp_path / "data")
    run = untrained_run(tmp_path / "run")
    assert main(["predict", "--runs", str(run), "--images", str(data / "images"), "--out", str(tmp_path / "pred")]) == 0
    metrics = tmp_path / "metrics.csv"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--data", str(data), "--out", str(metrics)]) == 0
    table = rows(metrics)
    assert {row["id"] for row in table} == {f"'{name}" for name in FORMULAS} | {"plain"}
    assert all(0 <= float(row["dice"]) <= 1 for row in table)
    assert main(["report", "--eval", str(metrics), "--out", str(tmp_path / "report")]) == 0
    assert {row["id"] for row in rows(tmp_path / "report" / "metrics.csv")} == {row["id"] for row in table}


def test_a_split_file_seglib_reads_back_keeps_the_ids_as_they_are(tmp_path):
    data = formula_dataset(tmp_path / "data")
    split = tmp_path / "split.csv"
    assert main(["split", "--data", str(data), "--out", str(split), "--test", "1", "--val", "1"]) == 0
    assert {row["id"] for row in rows(split)} == {*FORMULAS, "plain"}  # the names of the files they stand for
