"""Synthetic frontal (AP) pelvis radiographs with bone masks: the embedded default dataset.

Anatomy is described in millimetres in a *canonical* frame: x points to the image's right (the
patient's LEFT), y points down, the origin lies on the midline at the level of the hip-joint
centres. Each paired bone is described once in *side* coordinates (x = distance lateral of the
midline) and mirrored for the patient's right, with its own small shape variation per side.

A random pose (scale, rotation, shift) maps the canonical frame onto the detector. Bones are
drawn on a 2x supersampled grid as projected attenuation (cortical shell + trabecular core, so
overlapping bones add up), masks are drawn from the very same polygons, then both are reduced to
the output size. Soft tissue and bowel gas are smooth path-length fields. The sum goes through a
detector model: blur, heel effect, quantum (Poisson) noise, log transform, dynamic-range
compression, window/gamma, edge enhancement.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

STRUCTURES = ("left_hip", "right_hip", "sacrum", "left_femur", "right_femur")
LABEL_VALUES = {"left_hip": 134, "right_hip": 255}
PARTNERS = {"left_hip": "right_hip", "right_hip": "left_hip", "left_femur": "right_femur", "right_femur": "left_femur"}

FIELD_OF_VIEW_MM = 360.0  # detector width and height at scale 1
_SUPERSAMPLING = 2
_VIEW_CENTRE_MM = np.array([0.0, -10.0])  # canonical point shown at the image centre before the random shift
_PATIENT_SIDES = {"left": 1.0, "right": -1.0}  # sign of canonical x on each patient side

# --- Anatomy in side coordinates (mm; x lateral of the midline, y down, 0 = hip-joint centres) ---

# Hip bone outline, from the medial end of the iliac crest round the crest, down the lateral border,
# round the ischium and the pubis, and back up the pelvic brim; the sacroiliac joint closes it.
_HIP_OUTLINE = np.array([
    (42, -93), (50, -110), (64, -122), (84, -128), (104, -127),  # iliac crest
    (122, -118), (134, -102), (134, -86),     # widest point of the crest (iliac tubercle)
    (127, -71), (120, -61),                   # anterior superior iliac spine
    (113, -52), (112, -41),                   # anterior inferior iliac spine
    (108, -30), (103, -22),                   # lateral edge of the acetabular roof
    (108, -7), (106, 9), (98, 24),            # posterior acetabular wall over the femoral head
    (91, 38), (87, 55), (79, 68), (66, 73),   # ischial body and tuberosity
    (54, 70), (38, 62), (20, 54), (8, 48),    # ischiopubic ramus down to the symphysis
    (4, 30), (5, 10),                         # symphyseal face
    (14, 4), (32, 0), (50, -4),               # pubic tubercle and superior ramus (pecten)
    (62, -10), (58, -21), (47, -29),          # iliopectineal eminence and pelvic brim
], float)
_SI_JOINT = np.array([(46, -83), (44, -70), (40, -52), (35, -33)], float)  # joint line, top to bottom
_HIP_CREST = _HIP_OUTLINE[:10]
_OBTURATOR_FORAMEN = ((44.0, 30.0), (16.0, 22.0), 20.0)  # centre, semi-axes, tilt (top lateral)
_HIP_CENTRE = np.array([88.0, 0.0])

# Dense lines a radiologist expects inside the hip bone: (curve, width mm, attenuation).
_HIP_LINES = (
    (np.array([(64, 2), (62, 14), (65, 23), (70, 25), (73, 18), (71, 6)], float), 1.6, 0.20),  # teardrop
    (np.array([(103, -22), (108, -7), (106, 8), (100, 19), (93, 26)], float), 1.4, 0.12),     # posterior wall
    (np.array([(100, -24), (95, -12), (89, -1), (81, 8), (72, 13)], float), 1.4, 0.10),        # anterior wall
    (np.array([(61, -14), (60, 2), (62, 18), (66, 34), (71, 48)], float), 1.6, 0.12),         # ilioischial line
    (np.array([(37, -32), (48, -28), (58, -20), (62, -10), (50, -4), (32, 0), (14, 4)], float), 2.4, 0.22),  # brim
    (_HIP_CREST, 5.0, 0.09),                                                                  # thick crest
)
# Thickness variations of the hip bone: (centre, sigmas, attenuation); negative = thinner bone.
_HIP_THICKNESS = (
    ((92, -88), (22, 18), -0.12),  # the iliac fossa is a thin plate
    ((84, -30), (16, 11), 0.16),   # supra-acetabular bone carries the body weight
    ((88, 30), (9, 12), 0.08),     # posterior column
    ((76, 60), (12, 9), 0.14),     # ischial tuberosity
    ((14, 28), (8, 14), 0.07),     # pubic body
)

# Proximal femur with the head centre at the origin, the shaft vertical and a 130 degree neck-shaft
# angle. The neck points stay with the head; the trochanters and shaft turn about the neck base.
_FEMUR_NECK_TOP = np.array([(20, -6), (31, 2)], float)
_FEMUR_SHAFT = np.array([
    (39, 6),                                  # trochanteric fossa
    (45, -4), (54, -3), (60, 8), (59, 28),    # greater trochanter
    (57, 50), (57, 260),                      # lateral cortex, leaving the image
    (27, 260), (27, 80), (23, 68),            # medial cortex
    (15, 58), (20, 50),                       # lesser trochanter (its tip is scaled per side)
    (17, 40),                                 # calcar
], float)
_FEMUR_NECK_BOTTOM = np.array([(8, 29), (-4, 22), (0, 0)], float)
_FEMUR_NECK_BASE = np.array([42.0, 35.0])   # where the neck axis meets the shaft axis
_LESSER_TROCHANTER_TIP = 10  # row in _FEMUR_SHAFT

_SACRUM_TOP = np.array([(0, -90), (21, -91), (31, -86), (40, -84)], float)  # S1 endplate, top of the ala
_SACRUM_TAIL = np.array([(27, -23), (16, -15), (7, -10)], float)  # below the SI joints to the apex
_COCCYX = (((0, -3), (5.0, 3.0)), ((0, 4), (4.0, 2.6)), ((0, 10), (3.0, 2.2)))  # centre, semi-axes
_VERTEBRAE = (  # lumbar bodies: centre y, half-width, half-height, transverse process length, rise
    (-109.0, 26.0, 12.5, 18.0, 4.0),   # L5
    (-142.0, 24.5, 13.0, 22.0, 0.0),   # L4
    (-175.0, 23.5, 13.0, 27.0, -2.0),  # L3
    (-208.0, 22.5, 12.5, 24.0, -2.0),  # L2
)

# Projected attenuation per mm of path (arbitrary units; the soft tissue at the body's centre is 1).
_MU_CORTEX = 0.031
_MU_TRABECULAR = 0.010


@dataclass(frozen=True)
class PelvisSample:
    """One synthetic AP pelvis radiograph.

    image: (size, size) uint8, bone bright on a dark background.
    masks: structure name -> (size, size) bool, keys = STRUCTURES; left/right = the PATIENT's side,
        so ``left_hip`` lies in the image's right half.
    midline_x: column (pixels, pixel centres at integers) where the left-right symmetry axis
        crosses the image's vertical centre row, row (size - 1) / 2.
    midline_tilt_deg: tilt of that axis from vertical in degrees; positive means its upper end
        leans towards the image's right (the anatomy is turned clockwise on screen).
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    midline_x: float
    midline_tilt_deg: float


# --- Curves -----------------------------------------------------------------------------------


def _catmull_rom(p0, p1, p2, p3, samples: int) -> np.ndarray:
    """Points on the Catmull-Rom segments p1->p2 (arrays of segments), segment-major order."""
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None, None]
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                   + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    return curve.transpose(1, 0, 2).reshape(-1, 2)


def _closed_curve(points: np.ndarray, samples: int = 6) -> np.ndarray:
    """A smooth closed curve through the control points."""
    return _catmull_rom(np.roll(points, 1, 0), points, np.roll(points, -1, 0), np.roll(points, -2, 0), samples)


def _open_curve(points: np.ndarray, samples: int = 6) -> np.ndarray:
    """A smooth curve through the control points, from the first to the last."""
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    inner = _catmull_rom(padded[:-3], padded[1:-2], padded[2:-1], padded[3:], samples)
    return np.vstack([inner, points[-1:]])


def _turn(points: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the origin, clockwise on screen (y points down)."""
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.asarray(points, float) @ np.array([[c, s], [-s, c]])


def _ellipse(centre, semi_axes, tilt_deg: float = 0.0, start_deg: float = 0.0, stop_deg: float = 360.0,
             n: int = 40) -> np.ndarray:
    """Points on an ellipse (or an arc of it); tilt turns it clockwise on screen."""
    t = np.deg2rad(np.linspace(start_deg, stop_deg, n, endpoint=stop_deg - start_deg < 360))
    local = np.column_stack([semi_axes[0] * np.cos(t), semi_axes[1] * np.sin(t)])
    return _turn(local, tilt_deg) + np.asarray(centre, float)


def _rounded_box(centre, half_width: float, half_height: float, n: int = 40) -> np.ndarray:
    """A superellipse: a box with rounded corners, like a vertebral body seen from the front."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    power = 0.4  # |x|^5 + |y|^5 = 1 is traced by cos^(2/5), sin^(2/5)
    x, y = (np.sign(f) * np.abs(f) ** power for f in (np.cos(t), np.sin(t)))
    return np.column_stack([half_width * x, half_height * y]) + np.asarray(centre, float)


def _band(curve: np.ndarray, width: float) -> np.ndarray:
    """The outline of a band of the given width along an open curve (a thick line)."""
    tangent = np.gradient(curve, axis=0)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    return np.vstack([curve + normal * width / 2, (curve - normal * width / 2)[::-1]])


def _mirror(points: np.ndarray, sign: float) -> np.ndarray:
    """Side coordinates to canonical ones: the patient's right side is the mirror image."""
    return points * np.array([sign, 1.0])


# --- Geometry of one image --------------------------------------------------------------------


@dataclass(frozen=True)
class _Pose:
    """Maps canonical millimetres to pixel coordinates (x = column, y = row) of one grid."""

    px_per_mm: float
    angle: float         # radians, positive turns the anatomy clockwise on screen
    centre: np.ndarray   # pixel position of _VIEW_CENTRE_MM

    def to_pixels(self, points_mm: np.ndarray) -> np.ndarray:
        return _turn((points_mm - _VIEW_CENTRE_MM) * self.px_per_mm, np.rad2deg(self.angle)) + self.centre

    def to_mm(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical coordinates of pixel centres (broadcasting row and column index arrays)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = (cols - self.centre[0]) / self.px_per_mm, (rows - self.centre[1]) / self.px_per_mm
        return c * dx + s * dy + _VIEW_CENTRE_MM[0], -s * dx + c * dy + _VIEW_CENTRE_MM[1]

    def supersampled(self, factor: int) -> _Pose:
        # pixel centre x of the coarse grid sits at factor * x + (factor - 1) / 2 on the fine grid
        return _Pose(self.px_per_mm * factor, self.angle, self.centre * factor + (factor - 1) / 2)

    def midline(self, size: int) -> tuple[float, float]:
        """Column of the canonical x = 0 axis at the centre row, and its tilt in degrees."""
        centre_row = (size - 1) / 2
        x = self.centre[0] + np.tan(self.angle) * (self.centre[1] - centre_row)
        return float(x), float(np.rad2deg(self.angle))


def _random_pose(rng: np.random.Generator, size: int) -> _Pose:
    scale = rng.uniform(0.9, 1.1)
    angle = np.deg2rad(rng.uniform(-8.0, 8.0))
    shift = rng.uniform(-0.05, 0.05, 2) * size
    return _Pose(scale * size / FIELD_OF_VIEW_MM, angle, (size - 1) / 2 + shift)


@dataclass(frozen=True)
class _Side:
    """One patient side: mirror sign plus that side's own shape variation."""

    sign: float
    stretch: np.ndarray     # per-axis scale of this side (global build times side jitter)
    shift: np.ndarray       # mm
    outline_jitter: np.ndarray
    head_radius: float
    neck_shaft_deg: float
    shaft_lean_deg: float
    lesser_trochanter: float  # prominence; external rotation shows more of it
    foramen_height: float

    def canonical(self, points) -> np.ndarray:
        """Side coordinates of this side's anatomy to canonical millimetres."""
        return _mirror(np.asarray(points, float) * self.stretch + self.shift, self.sign)


def _random_sides(rng: np.random.Generator) -> dict[str, _Side]:
    """Both sides share the patient's build; each gets small independent deviations."""
    build = np.array([rng.uniform(0.93, 1.07), rng.uniform(0.94, 1.06)])
    head_radius, neck_shaft, lean = rng.uniform(22, 26), rng.uniform(125, 137), rng.uniform(4, 10)
    foramen_height = rng.uniform(0.85, 1.12)  # pelvic tilt changes how open the foramina look
    sides = {}
    for name, sign in _PATIENT_SIDES.items():
        sides[name] = _Side(
            sign=sign,
            stretch=build * (1 + np.clip(rng.normal(0, 0.02, 2), -0.04, 0.04)),
            shift=np.clip(rng.normal(0, 1.2, 2), -2.5, 2.5),
            outline_jitter=np.clip(rng.normal(0, 0.9, _HIP_OUTLINE.shape), -2, 2),
            head_radius=head_radius + rng.uniform(-0.6, 0.6),
            neck_shaft_deg=neck_shaft + rng.normal(0, 1.5),
            shaft_lean_deg=lean + rng.normal(0, 1.5),
            lesser_trochanter=rng.uniform(0.6, 1.3),
            foramen_height=foramen_height * rng.uniform(0.96, 1.04),
        )
    return sides


# --- Drawing bones ----------------------------------------------------------------------------


class _Canvas:
    """The supersampled grid: accumulated bone attenuation and polygon rasterisation."""

    def __init__(self, pose: _Pose, shape: tuple[int, int], texture: np.ndarray, unevenness: np.ndarray):
        self.pose = pose
        self.shape = shape
        self.texture = texture
        self.unevenness = unevenness
        self.bone = np.zeros(shape, np.float32)

    def fill(self, contour_mm: np.ndarray) -> np.ndarray:
        return _fill(self.pose, self.shape, contour_mm)

    def add_shape(self, contour_mm: np.ndarray, attenuation: float, within: np.ndarray) -> None:
        """Uniform extra attenuation over a small closed shape, only where `within` holds."""
        drawn = _fill_window(self.pose, self.shape, contour_mm)
        if drawn is not None:
            window, inside = drawn
            self.bone[window][inside & within[window]] += attenuation

    def add_line(self, curve_mm: np.ndarray, width_mm: float, attenuation: float, within: np.ndarray) -> None:
        # a line thinner than the grid is drawn two pixels wide and fainter, keeping its integral
        drawn_width = max(width_mm, 2 / self.pose.px_per_mm)
        self.add_shape(_band(_open_curve(curve_mm), drawn_width), attenuation * width_mm / drawn_width, within)

    def add_blob(self, centre_mm, sigma_mm, attenuation: float, within: np.ndarray) -> None:
        """A Gaussian thickening (or thinning) of bone, axis-aligned in canonical coordinates."""
        window = self._window(np.asarray(centre_mm, float), 3 * max(sigma_mm))
        if window is None:
            return
        x, y = self._window_mm(window)
        blob = np.exp(-0.5 * (((x - centre_mm[0]) / sigma_mm[0]) ** 2 + ((y - centre_mm[1]) / sigma_mm[1]) ** 2))
        self.bone[window] += (attenuation * blob * within[window]).astype(np.float32)

    def add_sphere(self, centre_mm, radius_mm: float, mu: float) -> None:
        """Path length through a ball, e.g. the femoral head."""
        window = self._window(np.asarray(centre_mm, float), radius_mm)
        if window is None:
            return
        x, y = self._window_mm(window)
        chord = 2 * np.sqrt(np.maximum(radius_mm**2 - (x - centre_mm[0]) ** 2 - (y - centre_mm[1]) ** 2, 0))
        self.bone[window] += (mu * chord).astype(np.float32)

    def add_bone(self, mask: np.ndarray, radius_mm: float, cortex_mm, core_density=1.0, texture: float = 0.1) -> None:
        """Project a bone as a rod of the given radius: a bright cortical shell round a textured core.

        The depth of each pixel inside the silhouette (distance transform) stands in for the
        distance from the bone's surface. cortex_mm and core_density may be callables of canonical
        (x, y), for bones whose build changes along their length.
        """
        window = _bounding_window(mask)
        if window is None:
            return
        # the transform measures to the nearest outside pixel centre; the edge lies half a pixel nearer
        depth = np.maximum(ndimage.distance_transform_edt(mask[window]) - 0.5, 0) / self.pose.px_per_mm
        cortex_mm, core_density = (self._evaluate(value, window) for value in (cortex_mm, core_density))
        off_axis = np.maximum(radius_mm - depth, 0)
        outer = np.sqrt(radius_mm**2 - off_axis**2)
        inner = np.sqrt(np.maximum((radius_mm - cortex_mm) ** 2 - off_axis**2, 0))
        # real bone is never uniform: fine trabecular grain plus broad zones of denser or thinner bone
        core = 2 * inner * core_density * (1 + texture * self.texture[window] + 0.25 * self.unevenness[window])
        density = _MU_CORTEX * 2 * (outer - inner) + _MU_TRABECULAR * core
        self.bone[window] += (density * mask[window]).astype(np.float32)

    def _evaluate(self, value, window):
        return value(*self._window_mm(window)) if callable(value) else value

    def _window(self, centre_mm: np.ndarray, radius_mm: float):
        cx, cy = self.pose.to_pixels(centre_mm[None])[0]
        r = radius_mm * self.pose.px_per_mm + 1
        rows = slice(max(int(cy - r), 0), min(int(cy + r) + 2, self.shape[0]))
        cols = slice(max(int(cx - r), 0), min(int(cx + r) + 2, self.shape[1]))
        return (rows, cols) if rows.start < rows.stop and cols.start < cols.stop else None

    def _window_mm(self, window) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = window
        return self.pose.to_mm(np.arange(rows.start, rows.stop)[:, None], np.arange(cols.start, cols.stop)[None, :])


def _fill(pose: _Pose, shape: tuple[int, int], contour_mm: np.ndarray) -> np.ndarray:
    """Boolean mask of a closed contour."""
    mask = np.zeros(shape, bool)
    drawn = _fill_window(pose, shape, contour_mm)
    if drawn is not None:
        mask[drawn[0]] = drawn[1]
    return mask


def _fill_window(pose: _Pose, shape: tuple[int, int], contour_mm: np.ndarray):
    """A closed contour rasterised within its bounding box: (window slices, bool mask) or None if
    off the grid. PIL scan-converts far faster than a point-in-polygon test."""
    pixels = pose.to_pixels(contour_mm)
    top, left = np.maximum(np.floor(pixels.min(0)).astype(int) - 1, 0)[::-1]
    bottom, right = np.minimum(np.ceil(pixels.max(0)).astype(int) + 2, shape)[::-1]
    if top >= bottom or left >= right:
        return None
    canvas = Image.new("1", (int(right - left), int(bottom - top)), 0)
    ImageDraw.Draw(canvas).polygon((pixels - (left, top)).ravel().tolist(), fill=1)
    return (slice(top, bottom), slice(left, right)), np.array(canvas, bool)


def _bounding_window(mask: np.ndarray):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _hip_outline(side: _Side, joint_gap: float) -> np.ndarray:
    si_joint = (_SI_JOINT + [joint_gap / 2, 0])[::-1]  # bottom to top closes the outline
    return side.canonical(np.vstack([_HIP_OUTLINE + side.outline_jitter, si_joint]))


def _obturator_foramen(side: _Side) -> np.ndarray:
    centre, (a, b), tilt = _OBTURATOR_FORAMEN
    return side.canonical(_ellipse(centre, (a, b * side.foramen_height), tilt))


def _draw_hip(canvas: _Canvas, side: _Side, joint_gap: float, allowed: np.ndarray) -> np.ndarray:
    mask = canvas.fill(_closed_curve(_hip_outline(side, joint_gap))) & ~canvas.fill(_obturator_foramen(side))
    mask &= allowed
    canvas.add_bone(mask, radius_mm=7.0, cortex_mm=1.6)
    for curve, width, attenuation in _HIP_LINES:
        canvas.add_line(side.canonical(curve), width, attenuation, within=mask)
    for centre, sigma, attenuation in _HIP_THICKNESS:
        canvas.add_blob(side.canonical([centre])[0], sigma, attenuation, within=mask)
    # the joint space (cartilage, no bone) under the sourcil, the dense roof arching over the head
    joint_space = _ellipse(_HIP_CENTRE, (side.head_radius + 1.5,) * 2, start_deg=205, stop_deg=305, n=12)
    canvas.add_line(side.canonical(joint_space), 3.0, -0.12, within=mask)
    roof = _ellipse(_HIP_CENTRE, (side.head_radius + 4.5,) * 2, start_deg=215, stop_deg=300, n=12)
    canvas.add_line(side.canonical(roof), 3.0, 0.25, within=mask)
    return mask


def _draw_sacrum(canvas: _Canvas, sides: dict[str, _Side], joint_gap: float, rng: np.random.Generator) -> np.ndarray:
    # each half follows its side's build, so the joint line it shares with that hip stays parallel
    halves = [side.canonical(np.vstack([_SACRUM_TOP, _SI_JOINT - [joint_gap / 2, 0], _SACRUM_TAIL]))
              for side in sides.values()]
    outline = np.vstack([halves[0], halves[1][1:][::-1]])  # the midline top point only once
    mask = canvas.fill(_closed_curve(outline))
    deviation = rng.normal(0, 1.5)  # the coccyx often points a little to one side
    for k, (centre, semi_axes) in enumerate(_COCCYX):
        mask |= canvas.fill(_ellipse((centre[0] + deviation * k, centre[1]), semi_axes))
    canvas.add_bone(mask, radius_mm=11.0, cortex_mm=1.4)
    canvas.add_blob((0, -77), (15, 8), 0.08, within=mask)  # S1 body
    canvas.add_line(_ellipse((0, -86), (21, 4), start_deg=0, stop_deg=180, n=12), 1.5, 0.18, within=mask)
    canvas.add_line(np.array([(0, -80), (0, -40), (0, -16)], float), 4.0, 0.07, within=mask)  # median crest
    for k in range(4):  # paired anterior sacral foramina: dark holes under bright arcuate rims
        radius, y = 5.5 - 0.8 * k, -70 + 13.5 * k
        for sign in _PATIENT_SIDES.values():
            centre = (sign * (17 - 1.5 * k), y)
            canvas.add_shape(_ellipse(centre, (radius, radius * 0.9)), -0.11, within=mask)
            arc = _ellipse(centre, (radius + 1.5, radius + 1.5), start_deg=200, stop_deg=340, n=10)
            canvas.add_line(arc, 1.3, 0.12, within=mask)
    return mask


def _femur_to_side(side: _Side, points, shaft_part: bool) -> np.ndarray:
    """Standard-femur coordinates to side coordinates: this side's neck-shaft angle, lean and size."""
    points = np.asarray(points, float)
    if shaft_part:  # a wider neck-shaft angle swings the shaft laterally about the neck base
        points = _turn(points - _FEMUR_NECK_BASE, 130 - side.neck_shaft_deg) + _FEMUR_NECK_BASE
    return _turn(points, side.shaft_lean_deg) * (side.head_radius / 24) + _HIP_CENTRE


def _femur_outline(side: _Side) -> np.ndarray:
    shaft = _FEMUR_SHAFT.copy()
    shaft[_LESSER_TROCHANTER_TIP, 0] = 21 - 6 * side.lesser_trochanter
    return side.canonical(np.vstack([_femur_to_side(side, _FEMUR_NECK_TOP, False), _femur_to_side(side, shaft, True),
                                     _femur_to_side(side, _FEMUR_NECK_BOTTOM, False)]))


def _draw_femur(canvas: _Canvas, side: _Side) -> np.ndarray:
    head_centre = side.canonical([_HIP_CENTRE])[0]
    mask = canvas.fill(_closed_curve(_femur_outline(side)))
    mask |= canvas.fill(_ellipse(head_centre, (side.head_radius * side.stretch[0],) * 2))
    neck_base, below = side.canonical(_femur_to_side(side, [_FEMUR_NECK_BASE, _FEMUR_NECK_BASE + (0, 1)], True))
    shaft_down = below - neck_base

    def along_shaft(x, y):
        return (x - neck_base[0]) * shaft_down[0] + (y - neck_base[1]) * shaft_down[1]

    def cortex(x, y):  # thin cortex round head, neck and trochanters, thick down the shaft
        return np.interp(along_shaft(x, y), [15, 75], [1.5, 6.5])

    def marrow(x, y):  # cancellous bone gives way to the fatty medullary canal
        return np.interp(along_shaft(x, y), [40, 100], [1.0, 0.15])

    canvas.add_bone(mask, radius_mm=13.0, cortex_mm=cortex, core_density=marrow)
    canvas.add_sphere(head_centre, side.head_radius, 0.2 * _MU_TRABECULAR)
    greater_trochanter = side.canonical(_femur_to_side(side, [(50, 14)], True))[0]
    canvas.add_blob(greater_trochanter, (9, 12), 0.08, within=mask)
    crest = side.canonical(_femur_to_side(side, [(52, 2), (42, 28), (22, 56)], True))  # intertrochanteric crest
    canvas.add_line(crest, 2.0, 0.07, within=mask)
    return mask


def _draw_lumbar_spine(canvas: _Canvas) -> None:
    """L2 to L5 for context (no masks): bodies with endplates, pedicles, processes."""
    everywhere = np.ones(canvas.shape, bool)
    bodies = np.zeros(canvas.shape, bool)
    processes = np.zeros(canvas.shape, bool)
    for y, half_width, half_height, process_length, rise in _VERTEBRAE:
        bodies |= canvas.fill(_rounded_box((0, y), half_width, half_height))
        processes |= canvas.fill(_ellipse((0, y + 0.6 * half_height), (5, 9)))  # spinous process
        for sign in _PATIENT_SIDES.values():
            root, tip = half_width - 6, half_width + process_length  # transverse process, tapering outwards
            process = np.array([(root, y - 0.55 * half_height), (tip, y - 0.5 * half_height - rise),
                                (tip, y - 0.05 * half_height - rise), (root, y + 0.15 * half_height)])
            processes |= canvas.fill(_closed_curve(_mirror(process, sign), samples=4))
            pedicle = _ellipse((sign * (half_width - 7), y - 0.35 * half_height), (4.5, 6.5), n=16)
            canvas.add_line(np.vstack([pedicle, pedicle[:1]]), 1.8, 0.12, within=everywhere)
    canvas.add_bone(bodies, radius_mm=11.0, cortex_mm=1.3)
    canvas.add_bone(processes, radius_mm=4.0, cortex_mm=1.2, texture=0.1)


def _trabecular_texture(rng: np.random.Generator, shape: tuple[int, int], px_per_mm: float) -> np.ndarray:
    """Band-pass noise with trabecular spacing (~1-3 mm), unit standard deviation."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    fine, coarse = (ndimage.gaussian_filter(noise, sigma * px_per_mm, truncate=3) for sigma in (0.9, 2.7))
    texture = fine - coarse
    return texture / max(float(texture.std()), 1e-6)


def _unevenness(rng: np.random.Generator, shape: tuple[int, int], px_per_mm: float) -> np.ndarray:
    """Smooth noise varying over ~1-2 cm, unit standard deviation (made on a coarse grid: cheap)."""
    coarse_shape = np.ceil(np.array(shape) / (8 * px_per_mm)).astype(int) + 2
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 1.2, mode="wrap")
    smooth = ndimage.zoom(coarse / max(float(coarse.std()), 1e-6), np.array(shape) / coarse_shape, order=1)
    return smooth.astype(np.float32)


def _draw_bones(canvas: _Canvas, sides: dict[str, _Side], rng: np.random.Generator) -> dict[str, np.ndarray]:
    si_gap, symphysis_gap = rng.uniform(2.5, 4.0), rng.uniform(4.0, 6.5)
    sacrum = _draw_sacrum(canvas, sides, si_gap, rng)
    masks = {"sacrum": sacrum}
    for name, side in sides.items():
        # the symphysis is a joint: each pubis stays on its own side of it, clear of the sacrum
        own_half = canvas.fill(_mirror(np.array([(symphysis_gap / 2, -400), (400, -400), (400, 400),
                                                 (symphysis_gap / 2, 400)], float), side.sign))
        masks[f"{name}_hip"] = _draw_hip(canvas, side, si_gap, own_half & ~sacrum)
        masks[f"{name}_femur"] = _draw_femur(canvas, side)
    _draw_lumbar_spine(canvas)
    return masks


# --- Soft tissue, gas and the detector ----------------------------------------------------------


def _soft_tissue(pose: _Pose, size: int, rng: np.random.Generator) -> np.ndarray:
    """Projected thickness of the lower trunk and the thighs (1 = the body's centre).

    Elliptic cross-sections give the darker flanks; a lower-attenuating subcutaneous fat layer
    outlines the muscles, as on real films. Psoas muscles and the bladder stand out faintly
    against the fat around them.
    """
    x, y = pose.to_mm(np.arange(size)[:, None], np.arange(size)[None, :])
    half_width = rng.uniform(160, 200) * (0.87 + 0.13 * np.exp(-(((y - 20) / 110) ** 2)))
    fat = rng.uniform(12, 35)

    def thickness(half):
        trunk = np.sqrt(np.clip(1 - (x / half) ** 2, 0, None))
        # two thigh cylinders side by side, a few millimetres apart at the perineum
        thighs = np.sqrt(np.clip(1 - ((np.abs(x) - 0.5 * half - 6) / (0.5 * half)) ** 2, 0, None))
        into_thighs = np.clip((y - 70) / 90, 0, 1)
        return (1 - into_thighs) * trunk + into_thighs * thighs

    organs = np.zeros((size, size), np.float32)
    for sign in _PATIENT_SIDES.values():
        psoas = np.array([(22, -240), (42, -240), (rng.uniform(72, 86), -50), (58, -25), (30, -60)])
        organs += 0.05 * _fill(pose, organs.shape, _closed_curve(_mirror(psoas, sign), samples=4))
    bladder = _ellipse((0, rng.uniform(-10, 5)), (rng.uniform(30, 50), rng.uniform(22, 35)))
    organs += rng.uniform(0.0, 0.05) * _fill(pose, organs.shape, bladder)
    organs = ndimage.gaussian_filter(organs, 2.5 * pose.px_per_mm)
    return 0.75 * thickness(half_width) + 0.25 * thickness(half_width - fat) + organs


def _bowel_gas(pose: _Pose, size: int, rng: np.random.Generator) -> np.ndarray:
    """Loss of attenuation from a few irregular gas pockets in the colon."""
    gas = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(2, 9)):
        centre = np.array([rng.uniform(-140, 140), rng.uniform(-210, -20)])
        radius = rng.uniform(6, 26)
        angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        wobble = radius * rng.uniform(0.6, 1.3, 12)
        aspect = rng.uniform(0.5, 1.0)
        blob = np.column_stack([wobble * np.cos(angles), aspect * wobble * np.sin(angles)])
        gas += rng.uniform(0.05, 0.16) * _fill(pose, gas.shape, _closed_curve(blob + centre))
    return ndimage.gaussian_filter(gas, 1.5 * pose.px_per_mm)


def _radiograph(attenuation: np.ndarray, rng: np.random.Generator, px_per_mm: float) -> np.ndarray:
    """Detector and processing: blur, uneven beam, quantum noise, log, dynamic-range compression,
    window/gamma, edge enhancement; the random settings stand in for different exposures and vendors."""
    blurred = ndimage.gaussian_filter(attenuation, rng.uniform(0.5, 0.9) * px_per_mm)
    photons = rng.uniform(5e4, 4e5)
    heel = 1 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, attenuation.shape[0])[:, None]  # anode heel effect
    physical = 2.5  # converts the units above into optical depth
    counts = rng.poisson(photons * heel * np.exp(-physical * blurred.astype(np.float64)))
    measured = -np.log(np.maximum(counts, 1) / photons) / physical
    # clinical processing flattens the large soft-tissue gradient so bone detail gets the grey range
    measured -= rng.uniform(0.3, 0.6) * _low_pass(measured, 25 * px_per_mm)
    low, high = np.percentile(measured, [rng.uniform(0.5, 3), 99.8])
    high += rng.uniform(0.05, 0.3) * (high - low)  # how far the densest bone stays below white
    shown = np.clip((measured - low) / (high - low), 0, 1) ** rng.uniform(0.9, 1.4)
    shown += rng.uniform(0.3, 0.8) * (shown - ndimage.gaussian_filter(shown, 4 * px_per_mm))
    return np.clip(np.round(shown * 255), 0, 255).astype(np.uint8)


def _downsample(array: np.ndarray, factor: int) -> np.ndarray:
    """Block means (strided sums are several times faster than a reshape-mean)."""
    total = sum(array[i::factor, j::factor].astype(np.float32) for i in range(factor) for j in range(factor))
    return total / factor**2


def _low_pass(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A wide Gaussian blur, computed on a 4x coarser grid because only the trend matters."""
    coarse = ndimage.gaussian_filter(image[::4, ::4], sigma_px / 4, mode="nearest")
    return ndimage.zoom(coarse, np.array(image.shape) / coarse.shape, order=1, mode="nearest")


_PELVIC_RING = ("left_hip", "right_hip", "sacrum")  # separated by joints, so their masks never overlap


def _output_masks(fine_masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Masks at the output size: a pixel belongs to a structure covering at least half of it.

    The pelvic-ring bones are disjoint on the fine grid; a pixel split half-and-half between two
    of them (possible where a joint is narrower than a pixel) goes to neither, keeping them disjoint.
    """
    coverage = {name: _downsample(fine_masks[name], _SUPERSAMPLING) for name in STRUCTURES}
    masks = {name: coverage[name] >= 0.5 for name in STRUCTURES}
    ring = np.stack([coverage[name] for name in _PELVIC_RING])
    ring_winner = (ring >= 0.5).sum(0) == 1
    for name in _PELVIC_RING:
        masks[name] &= ring_winner
    return masks


def make_pelvis(rng: np.random.Generator, size: int = 256) -> PelvisSample:
    """Draw one synthetic AP pelvis radiograph with its bone masks (see PelvisSample)."""
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    sides = _random_sides(rng)
    pose = _random_pose(rng, size)
    fine_pose = pose.supersampled(_SUPERSAMPLING)
    fine_shape = (size * _SUPERSAMPLING,) * 2
    canvas = _Canvas(fine_pose, fine_shape, _trabecular_texture(rng, fine_shape, fine_pose.px_per_mm),
                     _unevenness(rng, fine_shape, fine_pose.px_per_mm))
    fine_masks = _draw_bones(canvas, sides, rng)
    attenuation = _soft_tissue(pose, size, rng) + _downsample(canvas.bone, _SUPERSAMPLING)
    attenuation = np.maximum(attenuation - _bowel_gas(pose, size, rng), 0)
    image = _radiograph(attenuation, rng, pose.px_per_mm)
    masks = _output_masks(fine_masks)
    return PelvisSample(image, masks, *pose.midline(size))


# --- The dataset on disk ------------------------------------------------------------------------


def phantom_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for image `index` of a dataset made with `seed`: independent of the dataset's size."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def write_phantom_dataset(out_dir, n: int = 200, size: int = 256, seed: int = 0) -> Path:
    """Write n phantoms in the standard dataset layout and return out_dir.

    Layout: images/<id>.png, masks/<structure>/<id>.png (0/255), labels/<id>.png (0 background,
    LABEL_VALUES for the hip bones), labels.json, manifest.csv (id, patient_id, pixel_spacing_mm,
    midline_x, midline_tilt_deg). Ids are pelvis_0000, pelvis_0001, ...; image i depends only on
    (seed, i). Never overwrites: a non-empty out_dir raises FileExistsError. Everything is written
    to a temporary sibling directory that is renamed into place at the end.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out_dir = Path(out_dir)
    _refuse_to_overwrite(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _write_layout(staging, n, size, seed)
        _refuse_to_overwrite(out_dir)  # someone may have written there in the meantime
        if out_dir.exists():
            out_dir.rmdir()
        staging.chmod(0o755)  # mkdtemp makes it private; a dataset is meant to be shared
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _refuse_to_overwrite(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir}: already exists and is not an empty directory; refusing to overwrite it")


def _write_layout(root: Path, n: int, size: int, seed: int) -> None:
    for folder in ["images", "labels", *(f"masks/{name}" for name in STRUCTURES)]:
        (root / folder).mkdir(parents=True)
    rows = []
    for index in range(n):
        sample_id = f"pelvis_{index:04d}"
        sample = make_pelvis(phantom_rng(seed, index), size)
        _save_png(root / "images" / f"{sample_id}.png", sample.image)
        for name in STRUCTURES:
            _save_png(root / "masks" / name / f"{sample_id}.png", sample.masks[name].astype(np.uint8) * 255)
        _save_png(root / "labels" / f"{sample_id}.png", _label_map(sample.masks, sample_id))
        rows.append([sample_id, f"synthetic_{index:04d}", f"{FIELD_OF_VIEW_MM / size:.6g}",
                     f"{sample.midline_x:.3f}", f"{sample.midline_tilt_deg:.3f}"])
    (root / "labels.json").write_text(json.dumps(LABEL_VALUES, indent=2) + "\n")
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "patient_id", "pixel_spacing_mm", "midline_x", "midline_tilt_deg"])
        writer.writerows(rows)


def _label_map(masks: dict[str, np.ndarray], sample_id: str) -> np.ndarray:
    """One label-value image for the hip bones; a pixel claimed by both would make it ambiguous."""
    if np.any(masks["left_hip"] & masks["right_hip"]):
        raise RuntimeError(f"{sample_id}: left_hip and right_hip overlap; the label map would be ambiguous")
    labels = np.zeros(masks["left_hip"].shape, np.uint8)
    for name, value in LABEL_VALUES.items():
        labels[masks[name]] = value
    return labels


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array, mode="L").save(path, format="PNG")
