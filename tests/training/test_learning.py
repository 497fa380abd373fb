"""Learning is tested: the smoke profile, trained as it is, must reach Dice floors that no broken training
reaches. Measured for issue #24, each break made in a copy of the project and these tests run there
(best validation Dice left / right hip on the 16 phantoms; mean fused test Dice; left_thing on the
scattered squares):

    the code as it is              0.802 / 0.819   fused 0.670 / 0.621   squares 0.911
    learning rate 0                0.266 / 0.274   fused 0.198 / 0.207   squares 0.170
    constant loss                  0.266 / 0.274   fused 0.198 / 0.207   squares 0.170
    mirror flip, no partner swap   0.306 / 0.560   fused 0.347 / 0.219   squares 0.665
    left/right labels swapped      0.263 / 0.269   fused 0.001 / 0.002   squares 0.470
    images with another's masks    0.656 / >= 0.7  fused >= 0.5          squares 0.550

The last one is why the squares are here: the phantoms' hips lie in much the same place in every film."""

import json

import numpy as np
import pytest

from seglib.config import profile_config
from seglib.data.io import write_png
from seglib.evaluation.folder import evaluate_folder
from seglib.inference.predictor import fuse_folder
from seglib.training.fit import train

# The Dice a smoke run must reach on phantom_dataset: the best validation Dice (~0.8 measured), and the mean
# fused test Dice per hip (~0.65: two test films, where the small model over-segments; precision ~0.5).
LEARNING_FLOOR = 0.7
FUSED_LEARNING_FLOOR = 0.5
SCATTERED_LEARNING_FLOOR = 0.7  # write_scattered_squares below


@pytest.mark.slow
@pytest.mark.parametrize("structure", ["left_hip", "right_hip"])
def test_smoke_training_reaches_the_learning_floor(learned_hip_runs, structure):
    best = json.loads((learned_hip_runs[structure] / "summary.json").read_text())["best_val_dice"]
    assert best >= LEARNING_FLOOR, (
        f"{structure}: best validation Dice {best:.3f} is below the learning floor {LEARNING_FLOOR}")


@pytest.mark.slow
def test_fused_and_evaluated_test_predictions_reach_the_learning_floor(learned_hip_runs, phantom_dataset, tmp_path):
    fused = fuse_folder([learned_hip_runs["left_hip"], learned_hip_runs["right_hip"]], phantom_dataset / "images",
                        tmp_path / "fused", tta=True, subset="test")
    dice = evaluate_folder(fused, phantom_dataset).groupby("structure")["dice"].mean()
    below = {structure: round(value, 3) for structure, value in dice.items() if value < FUSED_LEARNING_FLOOR}
    assert set(dice.index) == {"left_hip", "right_hip"}
    assert not below, f"fused test Dice below the learning floor {FUSED_LEARNING_FLOOR}: {below}"


def write_scattered_squares(root, n: int = 32, size: int = 64, seed: int = 0):
    """Bright rectangles of random size, brightness and place, left_thing on the image's right half and
    right_thing on its left: where a mask lies is told only by its own image, so a model trained on images
    paired with other images' masks learns nothing it can use (on the phantoms the hips lie in much the same
    place in every film, and such a model still scores ~0.65)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = rng.integers(10, 40, (size, size)).astype(np.uint8)
        for structure, columns in (("left_thing", (size // 2 + 2, size - 2)), ("right_thing", (2, size // 2 - 2))):
            height, width = rng.integers(16, 30), rng.integers(10, 16)
            top, left = rng.integers(2, size - 2 - height), rng.integers(columns[0], columns[1] - width)
            mask = np.zeros((size, size), np.uint8)
            mask[top:top + height, left:left + width] = 255
            image[mask > 0] = rng.integers(150, 250)
            write_png(root / "masks" / structure / f"case{i:02d}.png", mask)
        write_png(root / "images" / f"case{i:02d}.png", image)
    return root


@pytest.mark.slow
def test_smoke_training_finds_objects_that_only_their_image_locates(tmp_path):
    data = write_scattered_squares(tmp_path / "squares")
    run = train(profile_config("smoke", data=str(data), structures=("left_thing",)), tmp_path / "run", verbose=0)
    best = json.loads((run / "summary.json").read_text())["best_val_dice"]
    assert best >= SCATTERED_LEARNING_FLOOR, (
        f"left_thing: best validation Dice {best:.3f} is below the learning floor {SCATTERED_LEARNING_FLOOR}")
