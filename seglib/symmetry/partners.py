"""Left-right symmetry: which structures are mirror partners, and flips that respect them.

Left/right is the PATIENT's side. A horizontal flip of a frontal radiograph turns the patient's
left structure into the position (and shape) of the right one, so flipping an image must swap
the partners' masks.
"""

from __future__ import annotations

import numpy as np

# Structures on the midline are their own mirror image.
MIDLINE_STRUCTURES = frozenset({"sacrum", "coccyx", "spine", "trachea", "bladder", "pubic_symphysis"})


def patient_side(structure: str) -> str | None:
    """'left' or 'right' for a left_X / right_X name, else None (midline or unpaired)."""
    side, _, name = structure.partition("_")
    return side if side in ("left", "right") and name else None


def partner_of(structure: str) -> str | None:
    """The mirror partner: left_X <-> right_X, a midline structure itself, otherwise None."""
    side = patient_side(structure)
    if side is not None:
        return {"left": "right", "right": "left"}[side] + structure[len(side):]
    return structure if structure in MIDLINE_STRUCTURES else None


def mirror_targets(structures: tuple[str, ...] | list[str]) -> tuple[str, ...] | None:
    """For each structure, the one whose flipped mask is its target on a flipped image;
    None when some structure has no declared partner (a flip would then teach wrong anatomy)."""
    partners = tuple(partner_of(s) for s in structures)
    return None if None in partners else partners


def flip_partners(structures) -> dict[str, str]:
    """structure -> the structure whose mirrored prediction serves as its flip-TTA second opinion; a
    ValueError naming those whose mirror partner is not among `structures`."""
    partners = {s: partner_of(s) for s in structures}
    missing = sorted(s for s, p in partners.items() if p not in partners)
    if missing:
        raise ValueError(f"flip TTA for {', '.join(missing)} needs a model of the mirror partner "
                         f"({', '.join(str(partner_of(s)) for s in missing)}); pass both runs or drop --tta")
    return partners


def flip_with_partner_swap(image: np.ndarray, masks: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mirror an image (H, W[, C]) and its masks; each flipped mask is filed under its partner."""
    unpaired = [name for name in masks if partner_of(name) is None]
    if unpaired:
        raise ValueError(f"cannot mirror {', '.join(unpaired)}: no declared mirror partner")
    flipped = {partner_of(name): np.flip(mask, axis=1) for name, mask in masks.items()}
    return np.flip(image, axis=1), flipped
