"""What a reader of an AP film asks of a segmentation, one row per (image, structure) in areas.csv:

    id, structure          the image and the structure
    area_px                pixels in the structure's mask
    area_mm2               area_px x row spacing x column spacing; empty when the spacing is unknown
    left_right_area_ratio  area of left_X / area of right_X, the same on both partners' rows; empty for
                           a structure without a segmented partner, or when right_X is empty
    contested_px           pixels of the image claimed by two or more structures before fusion decided
                           (seglib.inference.fusion), the same on all the image's rows: a measure of doubt
    warning                why the image was not segmented (seglib.inference.film_checks: blank, too small,
                           a strip), on all its rows, whose areas are then 0; empty for a segmented image
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from seglib.symmetry.partners import partner_of, patient_side

AREA_COLUMNS = ["id", "structure", "area_px", "area_mm2", "left_right_area_ratio", "contested_px", "warning"]


def area_rows(image_id: str, masks: dict[str, np.ndarray], contested: np.ndarray,
              spacing_mm: tuple[float, float] | None, warning: str | None = None) -> list[dict]:
    areas = {structure: int(mask.sum()) for structure, mask in masks.items()}
    return [{"id": image_id, "structure": structure, "area_px": area,
             # An image without a known spacing gets an empty cell, never a guessed value.
             "area_mm2": "" if spacing_mm is None else area * spacing_mm[0] * spacing_mm[1],
             "left_right_area_ratio": _left_right_ratio(structure, areas),
             "contested_px": int(contested.sum()), "warning": warning or ""}
            for structure, area in areas.items()]


def _left_right_ratio(structure: str, areas: dict[str, int]):
    side, partner = patient_side(structure), partner_of(structure)
    if side is None or partner not in areas:
        return ""
    left, right = (structure, partner) if side == "left" else (partner, structure)
    return areas[left] / areas[right] if areas[right] else ""


def spacing_pair(image_id: str, spacing) -> tuple[float, float]:
    """A user's spacing for an image, one number (square pixels) or (row, column), as (row, column) mm."""
    pair = (spacing, spacing) if isinstance(spacing, numbers.Real) else tuple(spacing) if isinstance(spacing, (tuple, list)) else ()
    valid = len(pair) == 2 and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in pair)
    if not (valid and all(math.isfinite(v) and v > 0 for v in pair)):
        raise ValueError(f"pixel spacing of {image_id!r} must be a positive number of mm or a (row, column) "
                         f"pair of them, got {spacing!r}")
    return float(pair[0]), float(pair[1])
