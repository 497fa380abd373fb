"""`build_atlas_model` guards its output file for the Python API as `atlas` does for the command line:
a file seglib did not write is never replaced, and the check comes before the (long) build."""

import shutil

import pytest

from seglib.data.io import DataError
from seglib.data.outputs import UnsafeOutput
from seglib.phantom.shape_model import DEFAULT_MODEL, build_atlas_model


@pytest.mark.parametrize("force", [False, True])
def test_a_users_file_is_never_replaced_and_the_atlas_never_read(tmp_path, force):
    notes = tmp_path / "pelvis.npz"
    notes.write_bytes(b"the user's own file")
    # a missing atlas would be a DataError: an UnsafeOutput shows the output was refused before the build
    with pytest.raises(UnsafeOutput) as refusal:
        build_atlas_model(tmp_path / "no atlas", notes, force=force)
    assert str(refusal.value).startswith(f"{notes}: ") and "\n" not in str(refusal.value)
    assert notes.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pelvis.npz"]


def test_force_lets_a_rebuild_replace_an_earlier_shape_model_only(tmp_path):
    earlier = tmp_path / "pelvis.npz"
    shutil.copy(DEFAULT_MODEL, earlier)
    with pytest.raises(UnsafeOutput, match="already exists"):
        build_atlas_model(tmp_path / "no atlas", earlier)
    with pytest.raises(DataError, match="no atlas subjects"):  # past the guard: on to reading the atlas
        build_atlas_model(tmp_path / "no atlas", earlier, force=True)
    assert earlier.read_bytes() == DEFAULT_MODEL.read_bytes()
