"""The dataset and prediction folders as types (seglib.data.folders): what they write, check and training
read back; labels.json has one reader and one writer; and no other module joins the layout's names by hand."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from seglib.data.folders import DatasetDir, PredictionDir
from seglib.data.io import DataError, read_image
from seglib.data.layout import available_structures, load_records
from seglib.data.validation import check_dataset

PACKAGE = Path(__file__).resolve().parents[2] / "seglib"


def test_a_written_dataset_is_what_check_and_training_read_back(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65535, (12, 10), dtype=np.uint16)
    left = rng.random((12, 10)) > 0.5
    dataset = DatasetDir(tmp_path / "d")
    dataset.write_sample("x1", image, {"left_thing": left, "right_thing": ~left})
    assert check_dataset(tmp_path / "d") == []
    record = load_records(dataset, ["left_thing", "right_thing"])[0]
    assert record.image == tmp_path / "d" / "images" / "x1.png"
    np.testing.assert_array_equal(read_image(record.image), image)  # 16 bits kept
    np.testing.assert_array_equal(record.masks["left_thing"].read(), left)
    assert set(np.unique(read_image(record.masks["right_thing"].path)).tolist()) == {0, 255}
    with pytest.raises(DataError, match=r"structure: structure name '\.\./x' is not allowed"):
        dataset.write_mask("../x", "x1", left)


def test_label_maps_and_labels_json_read_back_as_masks(tmp_path):
    image = np.arange(20, dtype=np.uint8).reshape(4, 5)
    labels = np.zeros((4, 5), np.uint8)
    labels[:, :2], labels[:, 3:] = 1, 2
    dataset = DatasetDir(tmp_path / "d")
    dataset.write_image("a", image)
    dataset.write_label_map("a", labels)
    dataset.write_labels({"left_thing": 1, "right_thing": 2})
    assert json.loads((tmp_path / "d" / "labels.json").read_text()) == {"left_thing": 1, "right_thing": 2}
    assert available_structures(tmp_path / "d") == ["left_thing", "right_thing"]
    record = load_records(tmp_path / "d", ["left_thing", "right_thing"])[0]
    np.testing.assert_array_equal(record.masks["right_thing"].read(), labels == 2)
    with pytest.raises(FileExistsError):
        dataset.write_labels({"left_thing": 1})  # never overwritten unless asked (a resumed folder's own)


@pytest.mark.parametrize("content, problem", [
    ("{", "not valid JSON"), ('{"left_hip": 0}', "must map structure names to integer label values 1..65535"),
    ('{"left_hip": 3, "right_hip": 3}', "structures left_hip, right_hip share label values \\[3\\]"),
    ('{"../hip": 3}', "structure name '../hip' is not allowed")])
def test_a_bad_labels_json_is_named_with_its_problem(tmp_path, content, problem):
    (tmp_path / "labels.json").write_text(content)
    with pytest.raises(DataError, match=f"labels.json: {problem}"):
        DatasetDir(tmp_path).read_labels()
    with pytest.raises(DataError, match=f"labels.json: {problem}"):
        PredictionDir(tmp_path).read_labels()


def test_a_dataset_may_lack_labels_json_but_a_fused_prediction_may_not(tmp_path):
    assert DatasetDir(tmp_path).read_labels() == {}
    with pytest.raises(DataError, match=r"labels\.json: not found; a fused prediction folder"):
        PredictionDir(tmp_path).read_labels()


def test_a_probability_map_reads_back_to_within_a_16_bit_step(tmp_path):
    probability = np.linspace(-0.5, 1.5, 60, dtype=np.float32).reshape(6, 10)
    predictions = PredictionDir(tmp_path / "p")
    path = predictions.write_probability("left_thing", "a", probability)
    assert path == tmp_path / "p" / "probabilities" / "left_thing" / "a.png"
    assert read_image(path).dtype == np.uint16  # viewable, and in the dataset layout
    np.testing.assert_allclose(predictions.read_probability("left_thing", "a"), np.clip(probability, 0, 1), atol=1e-5)


# --- one place for the layout's names ---------------------------------------------------------------

LAYOUT_NAMES = {"images", "masks", "labels", "labels.json", "manifest.csv", "probabilities"}
LAYOUT_TYPES = PACKAGE / "data" / "folders.py"


def hand_joins(source: str, name: str) -> list[str]:
    """`where / "images"`, `Path(a, "masks")`, `.joinpath("labels.json")`, f"masks/{s}" and the like in the
    Python `source` of the file `name`: a layout name as a path part."""
    found = []
    for node in ast.walk(ast.parse(source)):
        parts = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = [node.left, node.right]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "Path", "joinpath", "join"):
            parts = node.args
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            first = str(node.values[0].value).split("/")
            if len(first) > 1 and first[0] in LAYOUT_NAMES:
                found.append(f"{name}:{node.lineno}: {first[0]}/...")
        found += [f"{name}:{node.lineno}: {part.value!r}" for part in parts
                  if isinstance(part, ast.Constant) and isinstance(part.value, str)
                  and part.value.split("/")[0] in LAYOUT_NAMES]
    return found


def test_no_module_outside_the_layout_types_joins_the_layout_names_by_hand():
    joins = [join for path in sorted(PACKAGE.rglob("*.py")) if path != LAYOUT_TYPES
             for join in hand_joins(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert not joins, "use seglib.data.folders (DatasetDir, PredictionDir):\n" + "\n".join(joins)


def test_the_scan_sees_each_kind_of_hand_join():
    source = ('root / "images"\nroot / "labels.json"\nPath(root, "masks", s)\nf"masks/{s}/{i}.png"\n'
              'root / "probabilities" / s\nos.path.join(root, "manifest.csv")\nroot / "model.keras"\n'
              '{"images": 3}\n')
    assert sorted(join.split(": ")[1] for join in hand_joins(source, "example.py")) == [
        "'images'", "'labels.json'", "'manifest.csv'", "'masks'", "'probabilities'", "masks/..."]
