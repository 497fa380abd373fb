"""Classical segmentation baselines for bilateral structure pairs, to evaluate beside the U-Net.

They know only two things about a structure: its brightness (polarity) and its side. Pipeline,
all of it at a working resolution of at most `working_size` pixels along the longer side (the
masks are resized back to the image's size with nearest-neighbour interpolation, order 0):

1. Contrast: intensities rescaled to [0, 1], then CLAHE (skimage.exposure.equalize_adapthist).
   Without it a global Otsu threshold on a radiograph separates the body from the air around it
   (bright) or fails on hazy, low-contrast chest films (dark); local equalisation makes one
   threshold separate bone from soft tissue and lung from mediastinum.
2. Gaussian smoothing (sigma 1 working pixel) against quantum noise.
3. Otsu threshold. Polarity "bright" keeps pixels above it: bone on a radiograph (hip, femur,
   clavicle, ...). Polarity "dark" keeps pixels below it: lung, which is air INSIDE the body; the
   air outside the body is just as dark, so dark regions touching the image border are removed
   (skimage.segmentation.clear_border). A lung that itself touches the border is lost with it:
   a known weakness on tightly cropped films.
4. Morphological opening then closing (radius 1 working pixel; larger radii cut the thin iliac
   wing), and removal of components under 0.1% of the image area.
5. Optional refinement (random walker, morphological Chan-Vese) seeded by that foreground, then
   step 4 again.
6. Split at the midline estimated from the image (seglib.symmetry.midline.estimate_midline, tilt-aware):
   the image's right of the axis is the PATIENT's left, so it goes to left_*; then the largest
   8-connected component per side.

Because only polarity and side tell structures apart, one call segments at most one bilateral
pair per polarity (left_lung/right_lung, or left_hip/right_hip, not hip and femur together: both
would get the same mask). Each mask is the largest region of that brightness on that side, e.g.
the hip bone together with the femur and half the sacrum: that is why these are baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from skimage import exposure, filters, morphology, segmentation, transform

from seglib.data.folders import PredictionDir
from seglib.data.io import DataError, read_image
from seglib.data.layout import list_images
from seglib.data.outputs import output_folder
from seglib.inference.fusion import keep_largest_component
from seglib.symmetry.midline import estimate_midline, side_channel
from seglib.symmetry.partners import patient_side

POLARITIES = ("bright", "dark")
# Keyword in the structure name (after left_/right_) -> how it appears on a radiograph.
POLARITY_BY_KEYWORD = {"hip": "bright", "femur": "bright", "clavicle": "bright", "humerus": "bright",
                       "scapula": "bright", "lung": "dark"}
WORKING_SIZE = 256
_SMOOTHING_SIGMA = 1.0  # working pixels
_MORPHOLOGY_RADIUS = 1  # working pixels
_MIN_OBJECT_FRACTION = 0.001  # of the image area
# Working pixels between the Otsu edge and the confident seeds on either side: the random walker
# redraws a band of twice this width. Wider bands lose thin bone (the iliac wing), whose eroded core
# leaves no foreground seed.
_SEED_MARGIN = 2
_CHAN_VESE_ITERATIONS = 20

Refinement = Callable[[np.ndarray, np.ndarray], np.ndarray]


def structure_polarity(structure: str) -> str:
    """'bright' or 'dark' from the structure's name (see POLARITY_BY_KEYWORD)."""
    name = structure.removeprefix("left_").removeprefix("right_")
    found = {polarity for keyword, polarity in POLARITY_BY_KEYWORD.items() if keyword in name}
    if len(found) != 1:
        raise ValueError(f"cannot tell whether {structure!r} is bright or dark on a radiograph from its name; "
                         f"pass polarity='bright' or 'dark'")
    return found.pop()


def otsu_baseline(image: np.ndarray, structures, polarity: str | None = None,
                  working_size: int = WORKING_SIZE) -> dict[str, np.ndarray]:
    """structure -> bool mask of the image's shape, from a cleaned Otsu threshold split at the midline.

    `structures` are left_X / right_X names; `polarity` overrides the one read from the names."""
    return _segment(image, structures, polarity, working_size, refine=None)


def random_walker_baseline(image: np.ndarray, structures, polarity: str | None = None,
                           working_size: int = WORKING_SIZE) -> dict[str, np.ndarray]:
    """As otsu_baseline, with the foreground's outline redrawn by skimage.segmentation.random_walker
    from seeds: the Otsu foreground eroded (foreground) and the complement of it dilated (background),
    so only a band 2 x _SEED_MARGIN working pixels wide round the Otsu edge is decided again."""
    return _segment(image, structures, polarity, working_size, refine=_random_walker_refinement)


def chan_vese_baseline(image: np.ndarray, structures, polarity: str | None = None,
                       working_size: int = WORKING_SIZE) -> dict[str, np.ndarray]:
    """As otsu_baseline, with the foreground evolved by skimage.segmentation.morphological_chan_vese
    (_CHAN_VESE_ITERATIONS iterations) from the Otsu foreground."""
    return _segment(image, structures, polarity, working_size, refine=_chan_vese_refinement)


BASELINES: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "otsu": otsu_baseline,
    "random_walker": random_walker_baseline,
    "chan_vese": chan_vese_baseline,
}


def predict_baseline_folder(name: str, images_dir: str | Path, out_dir: str | Path, structures,
                            ids=None, polarity: str | None = None, force: bool = False) -> Path:
    """Run baseline `name` on every image of `images_dir` (or only `ids`) and write
    OUT/masks/<structure>/<id>.png (0/255), the layout seglib.evaluation.folder.evaluate_folder reads.
    OUT must be empty or absent unless `force`; it appears only when every image is done.
    `polarity` as in otsu_baseline."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    images = _selected_images(images_dir, ids)
    with output_folder(out_dir, "baseline", [images_dir], force, ids=images) as staging:
        predicted = PredictionDir(staging)
        for image_id, path in images.items():
            masks = BASELINES[name](read_image(path), structures, polarity=polarity)
            for structure, mask in masks.items():
                predicted.write_mask(structure, image_id, mask)
    return Path(out_dir)


def _selected_images(images_dir: str | Path, ids) -> dict[str, Path]:
    images = list_images(images_dir)
    if ids is None:
        return images
    unknown = [image_id for image_id in ids if image_id not in images]
    if unknown:
        raise DataError(f"{images_dir}: no image with id {unknown[0]!r} ({len(unknown)} unknown ids)")
    return {image_id: images[image_id] for image_id in ids}


def _segment(image, structures, polarity, working_size, refine: Refinement | None) -> dict[str, np.ndarray]:
    image = np.asarray(image)
    polarity_of = _polarities(structures, polarity)
    small = _working_image(image, working_size)
    patient_left = side_channel(small.shape, estimate_midline(small)) > 0  # the image's right of the axis
    equalised = filters.gaussian(exposure.equalize_adapthist(small), _SMOOTHING_SIGMA)
    masks = {}
    for kind in sorted(set(polarity_of.values())):
        foreground = _clean(_otsu_foreground(equalised, kind), kind)
        if refine is not None:
            foreground = _clean(refine(equalised, foreground), kind)
        for structure in (s for s, p in polarity_of.items() if p == kind):
            on_its_side = patient_left if structure.startswith("left_") else ~patient_left
            masks[structure] = _to_shape(keep_largest_component(foreground & on_its_side), image.shape)
    return masks


def _polarities(structures, polarity: str | None) -> dict[str, str]:
    """structure -> polarity, refusing what the baselines cannot tell apart."""
    structures = list(dict.fromkeys(structures))
    if not structures:
        raise ValueError("no structures requested")
    unpaired = [s for s in structures if patient_side(s) is None]
    if unpaired:
        raise ValueError(f"baselines segment left_X/right_X structures only; cannot place {', '.join(unpaired)}")
    if polarity is not None and polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
    polarity_of = {s: polarity or structure_polarity(s) for s in structures}
    for kind in POLARITIES:
        pairs = sorted({s.removeprefix("left_").removeprefix("right_") for s, p in polarity_of.items() if p == kind})
        if len(pairs) > 1:
            raise ValueError(f"{', '.join(pairs)} are all {kind}: a baseline would give them the same mask; "
                             f"segment one {kind} pair per call")
    return polarity_of


def _working_image(image: np.ndarray, working_size: int) -> np.ndarray:
    """float64 in [0, 1], longest side at most working_size (anti-aliased)."""
    if image.ndim != 2:
        raise ValueError(f"baselines need a 2D grey image (H, W), got shape {image.shape}")
    if working_size < 8:
        raise ValueError(f"working_size must be at least 8 pixels, got {working_size}")
    image = exposure.rescale_intensity(image.astype(np.float64), out_range=(0.0, 1.0))
    scale = working_size / max(image.shape)
    if scale >= 1:
        return image
    shape = tuple(max(1, round(n * scale)) for n in image.shape)
    return transform.resize(image, shape, anti_aliasing=True)


def _otsu_foreground(equalised: np.ndarray, polarity: str) -> np.ndarray:
    threshold = filters.threshold_otsu(equalised)
    return equalised > threshold if polarity == "bright" else equalised < threshold


def _clean(foreground: np.ndarray, polarity: str) -> np.ndarray:
    foreground = morphology.isotropic_opening(foreground, _MORPHOLOGY_RADIUS)
    foreground = morphology.isotropic_closing(foreground, _MORPHOLOGY_RADIUS)
    if polarity == "dark":
        foreground = segmentation.clear_border(foreground)  # the air outside the body
    smallest_kept = int(_MIN_OBJECT_FRACTION * foreground.size)
    return morphology.remove_small_objects(foreground, max_size=smallest_kept)


def _random_walker_refinement(equalised: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    seeds = np.zeros(foreground.shape, np.int32)  # 0 = to be decided
    seeds[~morphology.isotropic_dilation(foreground, _SEED_MARGIN)] = 1
    seeds[morphology.isotropic_erosion(foreground, _SEED_MARGIN)] = 2
    if not (np.any(seeds == 1) and np.any(seeds == 2)):
        return foreground  # one class only: nothing for the walker to decide between
    # Only the band is unknown, so a direct sparse solve ("bf") is cheap, and exact: the default
    # conjugate-gradient mode was 10x slower here and left probabilities outside [0, 1].
    return segmentation.random_walker(equalised, seeds, mode="bf") == 2


def _chan_vese_refinement(equalised: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    if not foreground.any():
        return foreground
    level_set = segmentation.morphological_chan_vese(equalised, _CHAN_VESE_ITERATIONS, init_level_set=foreground)
    return level_set.astype(bool)


def _to_shape(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    return transform.resize(mask, shape, order=0, anti_aliasing=False).astype(bool)
