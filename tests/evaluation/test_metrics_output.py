"""`evaluate_folder(out=...)` writes the metrics CSV as `evaluate` does, and guards it for the Python API
too: checked before the work, replaced only with `force` and only when it is an earlier metrics table."""

import numpy as np
import pytest
from conftest import file_contents

from seglib.data.io import write_png
from seglib.data.outputs import UnsafeOutput
from seglib.evaluation import folder
from seglib.evaluation.folder import evaluate_folder


@pytest.fixture
def pair(tmp_path):
    data, pred = tmp_path / "data", tmp_path / "pred"
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:10] = 255
    write_png(data / "images" / "=case.png", np.full((16, 16), 90, np.uint8))
    write_png(data / "masks" / "organ" / "=case.png", mask)
    write_png(pred / "masks" / "organ" / "=case.png", mask)
    return pred, data


def test_the_table_is_written_for_people_and_an_earlier_one_replaced_with_force(pair, tmp_path):
    pred, data = pair
    out = tmp_path / "metrics.csv"
    table = evaluate_folder(pred, data, method="mine", out=out)
    assert table["dice"].tolist() == [1.0]
    assert out.read_text().startswith("id,structure,method,dice,") and "'=case,organ,mine,1.0," in out.read_text()
    with pytest.raises(UnsafeOutput, match="already exists"):
        evaluate_folder(pred, data, method="other", out=out)
    evaluate_folder(pred, data, method="other", out=out, force=True)
    assert ",other," in out.read_text() and ",mine," not in out.read_text()


@pytest.mark.parametrize("target", ["notes.csv", "data/manifest.csv", "pred"])
def test_a_users_file_or_an_input_is_refused_before_any_work(pair, tmp_path, monkeypatch, target):
    pred, data = pair
    (tmp_path / "notes.csv").write_text("patient,remark\np0,months of work\n")
    (data / "manifest.csv").write_text("id,patient_id\n=case,p0\n")
    monkeypatch.setattr(folder, "load_records", lambda *a, **k: pytest.fail("evaluated before checking out"))
    before = file_contents(tmp_path)
    out = tmp_path / target
    with pytest.raises(UnsafeOutput) as refusal:
        evaluate_folder(pred, data, out=out, force=True)
    assert str(refusal.value).startswith(f"{out}: ") and "\n" not in str(refusal.value)
    assert file_contents(tmp_path) == before
