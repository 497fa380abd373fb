"""From line integrals of attenuation to a processed 16-bit film: soft tissue of the body and
thighs, and the detector chain (Beer-Lambert, anode heel effect, scatter, blur, quantum noise,
log, dynamic-range compression, film curve, edge enhancement, collimation, a lead side marker), and
for a clinical film the processing and presentation of seglib.phantom.clinical.

Every random range of the look is a field of `Appearance`, so an experiment can widen or move
them (e.g. another noise, contrast and blur range, to check that a model did not learn one look).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from seglib.phantom import clinical
from seglib.phantom.projector import Detector

_MU_FAT = 0.018      # per mm, 60-70 keV
_MU_MUSCLE = 0.021


@dataclass(frozen=True)
class Appearance:
    """Ranges (low, high) drawn uniformly per image; probabilities in [0, 1]."""

    photons: tuple[float, float] = (3e4, 4e5)        # per detector pixel without the patient
    blur_mm: tuple[float, float] = (0.25, 0.8)       # focal spot and detector unsharpness (sigma)
    scatter: tuple[float, float] = (0.1, 0.5)        # scatter-to-primary ratio
    heel: tuple[float, float] = (-0.2, 0.2)          # relative intensity change from top to bottom
    compression: tuple[float, float] = (0.4, 0.8)    # dynamic-range compression (share of the trend removed)
    contrast: tuple[float, float] = (3.0, 7.0)       # slope of the film's S-curve
    gamma: tuple[float, float] = (0.8, 1.3)
    sharpening: tuple[float, float] = (0.2, 1.0)     # unsharp-mask amount
    collimation: float = 0.5                          # probability of visible collimator edges
    collimation_margin: tuple[float, float] = (0.02, 0.1)  # share of the width, per edge
    marker: float = 0.8                               # probability of a lead L/R marker
    # What clinical films bring (seglib.phantom.clinical.CONDITION_FIELDS): the probability of each.
    implants: float = 0.0      # hardware: arthroplasty, dynamic hip screw, cannulated/sacroiliac screws, plates
    shield: float = 0.0        # a gonadal lead shield
    wide_pose: float = 0.0     # tilt 10-20 and rotation 8-15 degrees, obliquity up to 10
    tight_field: float = 0.0   # collimation (and a film) that cuts bones at its edge
    low_dose: float = 0.0      # 30-70 % of the photons
    unsharp: float = 0.0       # multi-scale unsharp masking of CR/DR processing
    equalised: float = 0.0     # strong equalisation (latitude reduction)
    text: float = 0.0          # burned-in text and digital markers


# Another look, outside the default ranges: fewer photons (more noise), flatter or steeper film,
# more blur, little edge enhancement. For checking that a model learned anatomy, not one look.
SHIFTED_APPEARANCE = Appearance(photons=(5e3, 3e4), blur_mm=(0.8, 1.6), scatter=(0.4, 0.8),
                                compression=(0.0, 0.3), contrast=(1.0, 2.5), gamma=(1.3, 1.8),
                                sharpening=(0.0, 0.15), collimation=0.8, marker=1.0)


def widest(*looks: Appearance) -> Appearance:
    """One look spanning all the given ones: each range from the lowest low to the highest high, each
    probability the largest. For a model meant to work on films from machines we do not know."""
    def span(name):
        values = [getattr(look, name) for look in looks]
        if isinstance(values[0], tuple):
            return (min(v[0] for v in values), max(v[1] for v in values))
        return max(values)
    return Appearance(**{f.name: span(f.name) for f in fields(Appearance)})


# Films as they come from the clinic: the wide detector ranges, and hardware, lead, processing,
# presentation and poses, each with its own probability (seglib.phantom.clinical).
CLINICAL_APPEARANCE = replace(widest(Appearance(), SHIFTED_APPEARANCE), implants=0.5, shield=0.3, wide_pose=0.3,
                              tight_field=0.3, low_dose=0.2, unsharp=0.5, equalised=0.4, text=0.6)

# The keys are seglib.config.APPEARANCE_NAMES (the command line's choices).
APPEARANCES = {"default": Appearance(), "shifted": SHIFTED_APPEARANCE,
               "wide": widest(Appearance(), SHIFTED_APPEARANCE), "clinical": CLINICAL_APPEARANCE}


@dataclass(frozen=True)
class BodyOutline:
    """Elliptic cross-sections (table frame, mm) of the lower trunk and the thighs."""

    half_width: float
    back: float       # y of the skin of the back (on the table, just above the detector)
    front: float      # y of the skin of the belly
    fat: float        # subcutaneous fat thickness
    groin: float      # z where the trunk gives way to the thighs
    thigh_radius: float

    @classmethod
    def random(cls, rng: np.random.Generator, hip_height: float) -> BodyOutline:
        back = -rng.uniform(20, 50)                                  # table top and pad
        front = -hip_height - rng.uniform(80, 170)                   # belly in front of the hips
        return cls(rng.uniform(150, 215), back, front, rng.uniform(10, 40), rng.uniform(-140, -100),
                   rng.uniform(85, 110))


def _chord(source, rays, centre_x, centre_y, half_x, half_y) -> np.ndarray:
    """Length of each ray inside an elliptic cylinder along z (centre, semi-axes in x and y)."""
    ox, oy = (source[0] - centre_x) / half_x, (source[1] - centre_y) / half_y
    dx, dy = rays[..., 0] / half_x, rays[..., 1] / half_y
    a, b, c = dx**2 + dy**2, 2 * (ox * dx + oy * dy), ox**2 + oy**2 - 1
    discriminant = np.maximum(b**2 - 4 * a * c, 0)
    return np.sqrt(discriminant) / a


def soft_tissue_path(detector: Detector, body: BodyOutline, turn: np.ndarray) -> np.ndarray:
    """Attenuation (flattened pixels) of the trunk, fading into two thighs below the groin; `turn`
    is the body's rotation in the detector plane (about the table-frame origin)."""
    pixels = np.arange(detector.size**2)
    rays = detector.rays(pixels % detector.size, pixels // detector.size) @ turn  # into the body's frame
    source = detector.source @ turn
    centre_y, half_y = (body.back + body.front) / 2, (body.back - body.front) / 2

    def trunk(shrink):
        return _chord(source, rays, 0.0, centre_y, body.half_width - shrink, half_y - shrink)

    def thighs(shrink):
        return sum(_chord(source, rays, side * body.half_width * 0.5, body.back - body.thigh_radius,
                          body.thigh_radius * 1.1 - shrink, body.thigh_radius - shrink) for side in (-1, 1))

    # z of each ray where it crosses the hip level (~ the middle of the body)
    depth = (body.back - body.thigh_radius) - source[1]
    z = source[2] + rays[..., 2] / rays[..., 1] * depth
    into_thighs = np.clip((body.groin - z) / 100.0 + 0.5, 0, 1)
    outer = (1 - into_thighs) * trunk(0) + into_thighs * thighs(0)
    inner = (1 - into_thighs) * trunk(body.fat) + into_thighs * thighs(body.fat * 0.7)
    return _MU_FAT * outer + (_MU_MUSCLE - _MU_FAT) * inner


def expose(attenuation: np.ndarray, detector: Detector, rng: np.random.Generator, look: Appearance,
           factor: int, plan: clinical.Plan | None = None,
           opaque: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The film (uint16, size = detector.size // factor) and the mask of its exposed field.

    `attenuation` is on the `factor`-times finer grid of `detector`; the detector integrates over
    each output pixel. A clinical film's `plan` adds its dose, field, processing and text; `opaque`
    (output grid) marks metal and lead, which the window leaves to saturate.
    """
    mm = detector.spacing * factor                          # output pixel size
    size = detector.size // factor
    attenuation = attenuation + _marker(detector, rng, look)
    primary = np.exp(-attenuation)
    primary = primary.reshape(size, factor, size, factor).mean(axis=(1, 3))
    rows = np.linspace(-0.5, 0.5, size)[:, None]
    primary = primary * (1 + rng.uniform(*look.heel) * rows)  # anode heel: one end of the field is darker
    scatter = rng.uniform(*look.scatter) * _low_pass(primary, 40 / mm)
    signal = ndimage.gaussian_filter(primary + scatter, rng.uniform(*look.blur_mm) / mm)
    photons = rng.uniform(*look.photons) * (mm / 1.4) ** 2  # the same dose per area at any pixel size
    photons *= plan.dose if plan else 1.0
    noise = plan.streams["noise"] if plan else rng   # see seglib.phantom.clinical._STREAMS
    counts = noise.poisson(photons * signal) + noise.uniform(0, 1, signal.shape)
    measured = -np.log(counts / photons)

    exposed = _collimation(size, rng, look)
    if plan and plan.tight_field:
        exposed &= clinical.tight_field(plan, size)
    anatomy = exposed if opaque is None or (exposed & ~opaque).sum() < 100 else exposed & ~opaque
    measured, excess = clinical.split_saturated(measured, anatomy, opaque) if opaque is not None else (measured, 0)
    measured -= rng.uniform(*look.compression) * _low_pass(measured, 25 / mm)
    if plan:
        measured = clinical.process(plan, measured, mm)
    measured = measured + excess
    low, high = np.percentile(measured[anatomy], [rng.uniform(0.5, 3), rng.uniform(99.0, 99.9)])
    shown = np.clip((measured - low) / max(high - low, 1e-9), 0, 1)
    shown = _film_curve(shown, rng.uniform(*look.contrast)) ** rng.uniform(*look.gamma)
    shown += rng.uniform(*look.sharpening) * (shown - ndimage.gaussian_filter(shown, 3 / mm))
    shown = np.clip(shown, 0, 1)
    shown[~exposed] = rng.choice([rng.uniform(0.85, 1.0), rng.uniform(0.0, 0.05)])
    if plan and plan.text:
        shown = clinical.burn_in(plan, shown)
    return np.round(shown * 65535).astype(np.uint16), exposed


def _film_curve(x: np.ndarray, slope: float) -> np.ndarray:
    """A characteristic S-curve mapping [0, 1] onto [0, 1]."""
    ends = 1 / (1 + np.exp(-slope * np.array([-0.5, 0.5])))
    return (1 / (1 + np.exp(-slope * (x - 0.5))) - ends[0]) / (ends[1] - ends[0])


def _low_pass(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A wide Gaussian blur on a 4x coarser grid (only the trend matters)."""
    coarse = ndimage.gaussian_filter(image[::4, ::4], sigma_px / 4, mode="nearest")
    return ndimage.zoom(coarse, np.array(image.shape) / coarse.shape, order=1, mode="nearest")


def _collimation(size: int, rng: np.random.Generator, look: Appearance) -> np.ndarray:
    exposed = np.ones((size, size), bool)
    if rng.random() < look.collimation:
        top, bottom, left, right = (int(rng.uniform(*look.collimation_margin) * size) for _ in range(4))
        exposed[:top], exposed[size - bottom:], exposed[:, :left], exposed[:, size - right:] = False, False, False, False
    return exposed


def _marker(detector: Detector, rng: np.random.Generator, look: Appearance) -> np.ndarray:
    """Attenuation of a lead letter in an upper corner: 'L' on the image's right (the patient's
    left) or 'R' on its left."""
    size = detector.size
    if rng.random() >= look.marker:
        return 0.0
    letter = rng.choice(["L", "R"])
    height = max(int(18 / detector.spacing), 6)           # an 18 mm letter
    canvas = Image.new("L", (size, size))
    font = ImageFont.load_default(size=height)
    margin = int(rng.uniform(0.04, 0.12) * size)
    x = size - margin - height if letter == "L" else margin
    ImageDraw.Draw(canvas).text((x, margin), str(letter), fill=255, font=font)
    return np.asarray(canvas, float) / 255 * 3.0
