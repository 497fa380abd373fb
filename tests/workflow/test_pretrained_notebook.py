"""Notebook 00 (seglib.workflow.pretrained_notebook) follows the command line's rule for its output
(issue #29, case 1): a folder the user names is replaced only with replace=True, and never when it
holds files that the earlier segment did not write; the accuracy step leaves nothing behind."""

import pytest

from seglib.phantom.dataset import write_phantom_dataset
from seglib.workflow.pretrained_notebook import PretrainedSegmentation


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("films") / "films", n=2, size=128, seed=77)


def _settings(films, out, **extra):
    return {"films": str(films), "out": str(out), "profile": "smoke", "tta": False, **extra}


def test_an_earlier_output_with_the_users_notes_is_kept_unless_replace_is_asked(films, tmp_path):
    out = tmp_path / "segmented"
    PretrainedSegmentation(_settings(films, out)).segment()
    (out / "notes.txt").write_text("left hip of pelvis_0001 corrected by hand\n")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    with pytest.raises(FileExistsError, match="replace=True"):
        PretrainedSegmentation(_settings(films, out)).segment()
    with pytest.raises(FileExistsError, match="notes.txt"):  # even when asked: the note is not segment's
        PretrainedSegmentation(_settings(films, out, replace=True)).segment()
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_replace_regenerates_an_untouched_earlier_output(films, tmp_path):
    out = tmp_path / "segmented"
    PretrainedSegmentation(_settings(films, out)).segment()
    (out / "labels" / "pelvis_0000.png").unlink()  # a file removed loses nothing of the user's
    with pytest.raises(FileExistsError):
        PretrainedSegmentation(_settings(films, out)).segment()
    PretrainedSegmentation(_settings(films, out, replace=True)).segment()
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["pelvis_0000.png", "pelvis_0001.png"]


def test_an_edited_label_map_is_never_replaced(films, tmp_path):
    out = tmp_path / "segmented"
    PretrainedSegmentation(_settings(films, out)).segment()
    edited = out / "labels" / "pelvis_0001.png"
    edited.write_bytes(edited.read_bytes() + b"\0")  # stands for a hand correction saved over the file
    with pytest.raises(FileExistsError, match="pelvis_0001.png"):
        PretrainedSegmentation(_settings(films, out, replace=True)).segment()
    assert edited.read_bytes().endswith(b"\0")


def test_accuracy_writes_nothing_beside_the_output(films, tmp_path):
    out, mine = tmp_path / "segmented", tmp_path / "segmented_masks"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    table = PretrainedSegmentation(_settings(films, out)).accuracy()
    assert {"left_hip", "right_hip"} <= set(table.index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segmented_masks"]
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
