"""`build_report(inputs=...)`: the metrics CSVs a report is made from are inputs its folder must not
replace, contain or lie on; checked inside build_report, before any work, for the Python API too."""

import pandas as pd
import pytest
from conftest import file_contents

from seglib.data.outputs import UnsafeOutput
from seglib.reporting import document
from seglib.reporting.document import build_report


def metrics(path):
    rows = [{"id": f"case{i}", "structure": "organ", "method": "unet", "dice": 0.8 + i / 100, "iou": 0.7,
             "precision": 0.9, "recall": 0.8, "hd95": 2.0, "hd": 3.0, "assd": 1.0, "surface_dice": 0.9}
            for i in range(3)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("target, problem", [("results", "contains the input"),
                                             ("results/metrics.csv", "is an input of this command")])
def test_a_report_over_its_metrics_csv_is_refused_untouched(tmp_path, monkeypatch, target, problem):
    (tmp_path / "results").mkdir()
    table = metrics(tmp_path / "results" / "metrics.csv")
    monkeypatch.setattr(document, "_metrics", lambda *a: pytest.fail("worked before checking the output"))
    before = file_contents(tmp_path)
    out = tmp_path / target
    with pytest.raises(UnsafeOutput) as refusal:
        build_report(out, extra_metrics=pd.read_csv(table), inputs=[table], force=True)
    assert str(refusal.value).startswith(f"{out}: {problem}") and "\n" not in str(refusal.value)
    assert file_contents(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temporary left
