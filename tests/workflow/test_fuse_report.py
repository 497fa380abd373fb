"""Notebook 03's body: its list settings, where its ablation goes, and the check that every method
was evaluated on every test image."""

import pandas as pd
import pytest
from conftest import write_square_dataset

from seglib.experiments.ablation import ablation_folders
from seglib.workflow.fuse_report import FuseAndReport, names


def test_comma_separated_settings_become_names_without_empty_entries():
    assert names("otsu,random_walker") == ["otsu", "random_walker"]
    assert names(" resunet , ,attention_unet,") == ["resunet", "attention_unet"]
    assert names("") == []


def test_the_ablation_goes_where_the_command_line_puts_it(tmp_path):
    assert ablation_folders("cxr_lungs_covid", tmp_path) == (tmp_path / "reports" / "ablation" / "cxr_lungs_covid",
                                                           tmp_path / "runs" / "ablation" / "cxr_lungs_covid")


@pytest.fixture
def report(tmp_path):
    data = write_square_dataset(tmp_path / "squares", n=2)
    settings = {"left": "left_thing", "right": "right_thing", "data": data, "profile": "smoke",
                "runs": tmp_path / "runs", "reports": tmp_path / "reports"}
    (tmp_path / "reports").mkdir()
    return FuseAndReport(settings)


def metrics(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "structure", "method", "dice"])


def test_check_outputs_lists_the_report_files_when_every_method_has_every_image(report, capsys):
    rows = [(i, s, m, 0.9) for i in ("case0", "case1") for s in ("left_thing", "right_thing") for m in ("U-Net", "otsu")]
    metrics(rows).to_csv(report.reports / "metrics.csv", index=False)
    report.check_outputs()
    files, methods = capsys.readouterr().out.splitlines()
    assert "'metrics.csv': True" in files and "'report.md': False" in files
    assert methods.startswith("['U-Net', 'otsu']")


def test_check_outputs_names_a_method_missing_test_images(report):
    rows = [(i, s, "U-Net", 0.9) for i in ("case0", "case1") for s in ("left_thing", "right_thing")]
    rows += [("case0", s, "otsu", 0.5) for s in ("left_thing", "right_thing")]
    metrics(rows).to_csv(report.reports / "metrics.csv", index=False)
    with pytest.raises(AssertionError, match=r"metrics.csv: methods without a row for every test image and "
                                             r"structure: \{'otsu': 2\}"):
        report.check_outputs()
