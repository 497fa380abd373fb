"""Fuse per-structure probability maps (one model per bone) into one label map.

Each structure's model answers "is this pixel my bone?" on its own, so two models can claim the
same pixel (e.g. left and right hip bone near the pubic symphysis) and `fuse` decides who keeps it.

A pixel is *claimed* by a structure when its probability is ``>= threshold``; pixels claimed by two
or more structures are *contested*. Strategies:

- ``"argmax"`` (default): the structure with the highest probability wins, if that probability
  is ``>= threshold``; otherwise the pixel is background. Contested pixels therefore go to the
  more confident model. Exact ties go to the structure listed first.
- ``"priority"``: contested pixels go to the first structure in ``priority`` that claims them;
  structures not named in ``priority`` rank after the named ones, in the order of
  ``probabilities``.
- ``"multilabel"``: every structure keeps all the pixels it claims, so masks may overlap; the
  label map, which can hold one label per pixel, shows the most probable of the structures
  whose final mask holds the pixel.

Then each structure's mask is cleaned, each step switchable:

1. ``min_object_fraction``: connected components (8-connected) smaller than this fraction of the
   image's pixel count (H*W) are removed; a fraction rather than a pixel count so one setting
   works at any image resolution (0.001 removes specks under 0.1 % of the image).
2. ``largest_component``: only the largest 8-connected component is kept (a bone is one piece).
3. ``fill_holes``: holes (4-connected background regions) of at most ``max_hole_area`` pixels
   are filled. Holes are NOT filled regardless of size because the hip bone has a real hole, the
   obturator foramen; ``max_hole_area`` must stay well below its area at your image size.
   A hole is background fully enclosed by the mask (background open to the image edge is not).
   With ``"argmax"`` and ``"priority"`` a hole is only filled with background pixels: a fill
   never takes pixels another structure won.

Pixels removed by cleaning become background; they are not handed to another structure.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.ndimage import binary_fill_holes
from skimage.morphology import remove_small_holes, remove_small_objects

from seglib.config import FUSION_STRATEGIES, checked_threshold

_MAX_STRUCTURES = 255  # labels i+1 must fit into the uint8 label map


@dataclass
class FusionResult:
    label_map: np.ndarray  # uint8, 0 = background, i+1 = i-th structure of the input
    masks: dict[str, np.ndarray]  # structure -> bool mask after cleaning
    contested: np.ndarray  # bool: claimed by 2+ structures before resolution
    labels: dict[str, int]  # structure -> its value in label_map


def fuse(
    probabilities: dict[str, np.ndarray],
    threshold: float = 0.5,
    strategy: str = "argmax",
    priority=None,
    largest_component: bool = True,
    fill_holes: bool = True,
    max_hole_area: int = 64,
    min_object_fraction: float = 0.0,
) -> FusionResult:
    """Fuse ``{structure: 2D probability map in [0, 1]}`` into one label map (see module doc)."""
    names, maps = _validated_maps(probabilities)
    _validate_options(threshold, strategy, priority, names, max_hole_area, min_object_fraction)

    # One structure at a time, never a stack of all the maps: at a film's size every full-size
    # copy counts (five float32 maps of a 3000 x 2500 film are 150 MB; README, segment's memory).
    order = _priority_order(priority, names)
    owner = None if strategy == "multilabel" else _owners(maps, threshold, strategy, order)
    masks = _clean_all(
        maps,
        threshold,
        owner,
        largest_component=largest_component,
        max_hole_area=max_hole_area if fill_holes else 0,
        min_pixels=_min_object_pixels(min_object_fraction, maps[0].size),
    )
    return FusionResult(
        label_map=_label_map(masks, maps, disjoint=owner is not None),
        masks=dict(zip(names, masks)),
        contested=_contested(maps, threshold),
        labels={name: index + 1 for index, name in enumerate(names)},
    )


def _validated_maps(probabilities):
    if not probabilities:
        raise ValueError("fuse needs at least one structure's probability map")
    if len(probabilities) > _MAX_STRUCTURES:
        raise ValueError(f"at most {_MAX_STRUCTURES} structures fit a uint8 label map")
    names = list(probabilities)
    maps = [np.asarray(probabilities[name], dtype=np.float32) for name in names]
    reference_shape = maps[0].shape
    for name, prob in zip(names, maps):
        if prob.ndim != 2 or prob.shape != reference_shape:
            raise ValueError(
                f"probability map of {name!r} has shape {prob.shape}; all maps must be 2D with "
                f"the shape of {names[0]!r}, {reference_shape}"
            )
        if np.isnan(prob).any() or prob.min() < 0 or prob.max() > 1:
            raise ValueError(
                f"probability map of {name!r} must hold values in [0, 1], found "
                f"min {np.nanmin(prob)}, max {np.nanmax(prob)}, NaN: {bool(np.isnan(prob).any())}"
            )
    return names, maps


def _validate_options(threshold, strategy, priority, names, max_hole_area, min_object_fraction):
    checked_threshold(threshold, "fuse threshold")
    if strategy not in FUSION_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(FUSION_STRATEGIES)}")
    if strategy == "priority" and not priority:
        raise ValueError("strategy='priority' needs priority=[structure names, winner first]")
    if strategy != "priority" and priority is not None:
        raise ValueError(f"priority is only used with strategy='priority', not {strategy!r}")
    if max_hole_area < 0:
        raise ValueError(f"max_hole_area must be >= 0, got {max_hole_area!r}")
    if not 0 <= min_object_fraction < 1:
        raise ValueError(
            f"min_object_fraction is a fraction of the image's pixels and must be in [0, 1), "
            f"got {min_object_fraction!r}"
        )


def _min_object_pixels(min_object_fraction, image_pixels):
    """Smallest component size that is kept: components below ``fraction * H*W`` pixels go."""
    # Round before ceil so float noise (0.07 * 100 = 7.000000000000001) does not add a pixel.
    return math.ceil(round(min_object_fraction * image_pixels, 9))


def _priority_order(priority, names):
    """Indices of the structures, highest priority first."""
    if priority is None:
        return list(range(len(names)))
    unknown = [name for name in priority if name not in names]
    if unknown or len(set(priority)) != len(priority):
        raise ValueError(
            f"priority must name each structure at most once from {names}, got {list(priority)}"
        )
    ranked = list(priority) + [name for name in names if name not in priority]
    return [names.index(name) for name in ranked]


def _owners(maps, threshold, strategy, order):
    """uint8 map of the exclusive strategies: i + 1 where the i-th structure keeps the pixel, 0 where
    no structure claims it."""
    owner = np.zeros(maps[0].shape, dtype=np.uint8)
    if strategy == "priority":
        for index in order:
            owner[(owner == 0) & (maps[index] >= threshold)] = index + 1
        return owner
    best = np.full(maps[0].shape, -1, dtype=np.float32)
    for index, probability in enumerate(maps):  # argmax; strictly greater, so exact ties go to the first
        owner[probability > best] = index + 1
        np.maximum(best, probability, out=best)
    owner[best < threshold] = 0
    return owner


def _clean_all(maps, threshold, owner, largest_component, max_hole_area, min_pixels):
    # Exclusive strategies (an owner map) may only fill holes with pixels no structure won, and
    # each pixel once, so the masks stay disjoint.
    # A structure's components and enclosed holes lie inside its bounding box: cleaned there, the
    # temporaries follow the bone's size, not the film's.
    cleaned = []
    for index, probability in enumerate(maps):
        mask = probability >= threshold if owner is None else owner == index + 1
        box = _bounding_box(mask)
        part = _remove_fragments(mask[box], largest_component, min_pixels)
        if max_hole_area > 0:
            added = _small_holes(part, max_hole_area)
            if owner is not None:
                added &= owner[box] == 0
                owner[box][added] = index + 1  # filled: no later structure fills it again
            part = part | added
        mask[box] = part
        cleaned.append(mask)
    return cleaned


def _bounding_box(mask):
    """The smallest (row, column) slices that hold all of the mask (at least one pixel)."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return slice(0, 1), slice(0, 1)
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def _contested(maps, threshold):
    """bool: pixels claimed by two or more structures before resolution."""
    claims = np.zeros(maps[0].shape, dtype=np.uint8)  # at most _MAX_STRUCTURES claims
    for probability in maps:
        claims += probability >= threshold
    return claims >= 2


def _small_holes(mask, max_hole_area):
    # binary_fill_holes only fills background enclosed by the mask; remove_small_holes alone
    # would also fill small background pockets against the image edge.
    enclosed = binary_fill_holes(mask) & ~mask
    return enclosed & remove_small_holes(mask, max_size=max_hole_area)


def _remove_fragments(mask, largest_component, min_pixels):
    if min_pixels > 1:
        mask = remove_small_objects(mask, max_size=min_pixels - 1, connectivity=2)
    if largest_component:
        mask = keep_largest_component(mask)
    return mask


def keep_largest_component(mask):
    components, count = ndimage.label(mask, structure=np.ones((3, 3)), output=np.int32)  # 8-connected
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0  # background is not a component
    return components == np.argmax(sizes)


def _label_map(masks, maps, disjoint):
    """uint8 map: for each pixel, the most probable structure whose mask holds it (exact ties: the
    first), else 0. `disjoint`: no pixel is in two masks (the exclusive strategies)."""
    label_map = np.zeros(maps[0].shape, dtype=np.uint8)
    if disjoint:
        for index, mask in enumerate(masks):
            label_map[mask] = index + 1
        return label_map
    best = np.full(maps[0].shape, -1, dtype=np.float32)
    for index, (mask, probability) in enumerate(zip(masks, maps)):
        better = mask & (probability > best)
        label_map[better] = index + 1
        np.copyto(best, probability, where=better)
    return label_map
