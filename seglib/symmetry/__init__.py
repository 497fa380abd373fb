"""Left-right symmetry: mirror partners and flips that respect them, the midline and the
side-aware input channel, and the bilateral consistency training term."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "partners": ("partner_of", "patient_side", "mirror_targets", "flip_with_partner_swap"),
    "midline": ("Midline", "estimate_midline", "side_channel"),
    "consistency": ("BilateralConsistencyModel", "consistency_term"),
})
