"""`pretrain` checks everything it needs before the rebuild (issue #29, item 10): a mistyped --atlas, a
missing held-out subject, a damaged mesh or an --out it may not replace is refused in one line before
the first step of an hours-long rebuild, and nothing is created, --work included."""

import shutil

import pytest
from conftest import file_contents

from seglib.cli import main
from seglib.models.shipped import pretrained_run
from seglib.phantom import shape_model
from seglib.workflow.build_pelvis_model import HELD_OUT

TETRAHEDRON = ("# vtk DataFile Version 4.0\nvtk output\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n"
               "0 0 0 1 0 0 0 1 0 0 0 1\nPOLYGONS 4 16\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n")
MESHES = {"left": "LeftHip{}_cpd.vtk", "right": "RightHip{}_cpd.vtk", "sacrum": "Sacrum{}_cpd.vtk"}


class RebuildStarted(Exception):
    pass


@pytest.fixture(autouse=True)
def no_rebuild(monkeypatch):
    """The rebuild's first step (the shape model) ends the test: every refusal must come before it."""
    def started(*args, **kwargs):
        raise RebuildStarted
    monkeypatch.setattr(shape_model, "build_shape_model", started)


def write_atlas(folder, subjects=("3", "4", *HELD_OUT)):
    """An atlas folder of tiny meshes: what the checks read, not enough for a shape model."""
    for subject in subjects:
        for side, name in MESHES.items():
            (folder / side).mkdir(parents=True, exist_ok=True)
            (folder / side / name.format(subject)).write_text(TETRAHEDRON)
    return folder


def pretrain(atlas, work, out, *options) -> int:
    return main(["pretrain", "--atlas", str(atlas), "--work", str(work), "--out", str(out), *options])


def refusal(capsys) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: "), error
    return error


def test_a_missing_atlas_is_refused_and_creates_no_work_folder(tmp_path, capsys):
    assert pretrain(tmp_path / "nowhere", tmp_path / "work", tmp_path / "out") == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in refusal(capsys)
    assert list(tmp_path.iterdir()) == []


def test_an_atlas_without_the_held_out_subjects_is_refused_before_the_rebuild(tmp_path, capsys):
    atlas = write_atlas(tmp_path / "atlas", subjects=("3", "4", "45"))
    assert pretrain(atlas, tmp_path / "work", tmp_path / "out") == 2
    assert f"{atlas}: the held-out subject(s) 46, 52, 55, 65 are not in the atlas (it has 3, 4, 45)" in refusal(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atlas"]


def test_a_damaged_mesh_is_named_before_the_rebuild(tmp_path, capsys):
    atlas = write_atlas(tmp_path / "atlas")
    damaged = atlas / "sacrum" / "Sacrum65_cpd.vtk"  # a held-out subject: read only in step 4, an hour later
    damaged.write_text(TETRAHEDRON[:120])
    assert pretrain(atlas, tmp_path / "work", tmp_path / "out") == 2
    assert refusal(capsys).startswith(f"error: {damaged}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atlas"]


@pytest.mark.parametrize("options", [[], ["--force"]])
def test_an_out_folder_it_may_not_replace_is_refused_before_the_rebuild(tmp_path, capsys, options):
    atlas, out = write_atlas(tmp_path / "atlas"), tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("months of work")
    assert pretrain(atlas, tmp_path / "work", out, *options) == 2
    assert ("was not written by seglib" if options else "exists and is not empty") in refusal(capsys)
    assert file_contents(out) == {"thesis.txt": b"months of work"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atlas", "mine"]


@pytest.mark.parametrize("work, problem", [("atlas/work", "atlas/work: lies inside the input"),
                                           ("notes.txt", "notes.txt: is a file; --work is a folder"),
                                           ("notes.txt/work", "notes.txt is a file, not a folder"),
                                           ("out/work", "out: contains the input")])
def test_a_work_folder_it_cannot_use_is_refused_before_the_rebuild(tmp_path, capsys, work, problem):
    atlas = write_atlas(tmp_path / "atlas")
    (tmp_path / "notes.txt").write_text("the user's notes")
    before = file_contents(tmp_path)
    assert pretrain(atlas, tmp_path / work, tmp_path / "out") == 2
    assert problem in refusal(capsys)
    assert file_contents(tmp_path) == before


def test_an_earlier_pretrain_output_with_force_passes_the_checks(tmp_path):
    atlas, out = write_atlas(tmp_path / "atlas"), tmp_path / "pelvis"
    shutil.copytree(pretrained_run("pelvis"), out)  # the shipped run: what the README's rebuild replaces
    with pytest.raises(RebuildStarted):
        pretrain(atlas, tmp_path / "work", out, "--force")


def test_a_base_that_is_no_model_is_refused_before_the_rebuild(tmp_path, capsys):
    atlas, notes = write_atlas(tmp_path / "atlas"), tmp_path / "notes"
    notes.mkdir()
    assert pretrain(atlas, tmp_path / "work", tmp_path / "out", "--base", str(notes)) == 2
    assert f"{notes}: --base is a pretrained model (pelvis) or a finished run folder" in refusal(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atlas", "notes"]


def test_the_shipped_model_is_a_base_the_rebuild_starts_from(tmp_path):
    with pytest.raises(RebuildStarted):  # every check passed: the shape model is built next
        pretrain(write_atlas(tmp_path / "atlas"), tmp_path / "work", tmp_path / "out", "--base", "pelvis")
