"""One synthetic AP pelvis radiograph rendered from real pelvic anatomy, with its bone masks.

Each image is a random pelvis from the statistical shape model of 30 CT pelves (seglib.phantom.shape_model,
I-STAR atlas, CC BY 4.0, research and education only, not for clinical use), completed with
proximal femurs seated in the fitted acetabula, lumbar vertebrae L3-L5, soft tissue and bowel gas,
put into a random supine pose and projected by a divergent beam onto a detector (seglib.phantom.projector).
Bone is a trabecular interior plus a cortical shell, so the lines of a real film (pelvic brim,
acetabular roof, teardrop, obturator ring) appear where rays graze the cortex. The detector model
(seglib.phantom.exposure) turns line integrals into a processed 16-bit film.

Masks are the projections of each bone (pixel centres covered by the projected surface, judged on a
finer grid below 512 px). Bones overlap in projection (femoral head over the acetabulum, sacral ala
over the ilium) and each mask keeps those pixels, except between the partners left_hip and
right_hip: where both project (at the symphysis), the pixel goes to the bone with the longer path
through it, so a label-value image of the two hips (seglib.phantom.dataset) is exactly their masks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from scipy import ndimage

from seglib.phantom import clinical
from seglib.phantom.exposure import Appearance, BodyOutline, expose, soft_tissue_path
from seglib.phantom.meshes import superellipsoid, tube
from seglib.phantom.projector import Detector, project_meshes
from seglib.phantom.shape_model import BONES, Pelvis, ShapeModel, load_shape_model

STRUCTURES = ("left_hip", "right_hip", "sacrum", "left_femur", "right_femur")
_SIDES = {"left": 1.0, "right": -1.0}  # sign of x (table and pelvic frames) on each patient side

# Excess attenuation over soft tissue, per mm of path (60-70 keV; soft tissue itself is ~0.02/mm).
_MU_TRABECULAR = 0.009
_MU_CORTEX = 0.05
_MU_MARROW = 0.002
_MU_GAS = -0.014


@dataclass(frozen=True)
class Pose:
    """The patient's pose and the beam geometry of one film (angles in degrees).

    tilt: pelvic tilt about the left-right axis, positive = the top of the pelvis turned towards the
        source (anterior tilt). rotation: axial, positive = the patient's left side turned towards
        the detector. obliquity: positive = the patient's left side raised towards the head.
    """

    tilt: float = 0.0
    rotation: float = 0.0
    obliquity: float = 0.0
    hip_height: float = 180.0        # hip-joint centres above the detector plane (mm)
    source_distance: float = 1100.0  # source to detector (mm)
    field_of_view: float = 390.0     # detector width (mm)
    centre_offset: tuple[float, float] = (0.0, 35.0)  # beam centre relative to the hip centres (x, z mm)

    def rotation_matrix(self) -> np.ndarray:
        t, r = np.deg2rad([self.tilt, self.rotation])
        tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
        axial = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
        return self.body_turn() @ axial @ tilt

    def body_turn(self) -> np.ndarray:
        """The obliquity alone: the whole patient (legs, soft tissue) lies turned by it in the
        detector plane; tilt and rotation are the pelvis's own."""
        o = np.deg2rad(self.obliquity)
        return np.array([[np.cos(o), 0, -np.sin(o)], [0, 1, 0], [np.sin(o), 0, np.cos(o)]])

    def place(self, points: np.ndarray) -> np.ndarray:
        """Pelvic frame (origin between the hip centres) to the table frame (detector plane y = 0)."""
        return np.asarray(points) @ self.rotation_matrix().T + np.array([0.0, -self.hip_height, 0.0])

    def detector(self, size: int) -> Detector:
        return Detector(size, self.field_of_view / size, self.centre_offset, 0.0, self.source_distance)

    @property
    def magnification(self) -> float:
        return self.source_distance / (self.source_distance - self.hip_height)


def random_pose(rng: np.random.Generator) -> Pose:
    return Pose(tilt=rng.uniform(-10, 10), rotation=rng.uniform(-8, 8), obliquity=rng.uniform(-6, 6),
                hip_height=rng.uniform(150, 220), source_distance=rng.uniform(1000, 1200),
                field_of_view=rng.uniform(400, 470), centre_offset=(rng.uniform(-15, 15), rng.uniform(15, 55)))


@dataclass(frozen=True)
class PelvisSample:
    """One synthetic AP pelvis radiograph.

    image: (size, size) uint16, bone bright. masks: structure -> (size, size) bool, keys STRUCTURES;
    left/right = the PATIENT's side, so ``left_hip`` lies on the image's right.
    midline_x: column (pixel centres at integers) where the projected pelvic axis (the superior axis
        through the point halfway between the hip-joint centres) crosses row (size - 1) / 2.
    midline_tilt_deg: its tilt from vertical; positive = upper end leans to the image's right.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    midline_x: float
    midline_tilt_deg: float
    pixel_spacing_mm: float = 0.0
    pose: Pose = field(default_factory=Pose)
    conditions: tuple[str, ...] = ()   # what a clinical look drew (seglib.phantom.clinical.Plan.conditions)


# --- The scene ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Solid:
    """A mesh with its excess attenuation per mm inside and its cortical-shell thickness."""

    vertices: np.ndarray
    triangles: np.ndarray
    mu: float
    cortex_mm: object = 0.0   # a number or one value per vertex
    cortex_cap_mm: float = 10.0


# The femoral shaft's outline: mm below the neck base (rounded top, trochanteric flare, shaft) and
# its half-width (medio-lateral) and half-depth there, for a head of 24 mm radius.
_SHAFT_PROFILE = (-22, -12, 10, 60, 100, 320)
_SHAFT_WIDTH = (8, 21, 25, 17, 14.5, 13.5)
_SHAFT_DEPTH = (7, 18, 21, 16, 14, 13.5)


def _femur(head_centre: np.ndarray, cup_radius: float, side: float, body_turn: np.ndarray,
           rng: np.random.Generator) -> tuple[dict[str, Solid], clinical.FemurAxes]:
    """A proximal femur (table frame) with its head seated in the acetabulum: head, neck,
    greater and lesser trochanters, and a shaft whose cortex thickens around a medullary canal
    (solids by name), and its axes, where implants go. The leg lies along the body, which
    `body_turn` turns in the detector plane."""
    head = cup_radius - rng.uniform(2.0, 3.5)             # the joint space is the cartilage of both sides
    scale = head / 24.0
    neck_shaft = np.deg2rad(rng.uniform(122, 140))
    version = np.deg2rad(rng.uniform(-10, 30))            # anteversion less the leg's internal rotation
    adduction = np.deg2rad(rng.uniform(-2, 12))
    down = body_turn @ np.array([-side * np.sin(adduction), 0.0, -np.cos(adduction)])
    medial0 = body_turn @ np.array([-side * np.cos(adduction), 0.0, np.sin(adduction)])
    medial = np.cos(version) * medial0 + np.sin(version) * np.array([0.0, -1.0, 0.0])
    towards_head = np.cos(neck_shaft) * down + np.sin(neck_shaft) * medial
    base = head_centre - rng.uniform(46, 56) * scale * towards_head
    lateral, posterior = -medial0, np.array([0.0, 1.0, 0.0])
    frame = np.column_stack([lateral, posterior, -down])   # local (lateral, posterior, up) -> table

    neck_length = np.linalg.norm(head_centre - base)
    profile, width, depth = _SHAFT_PROFILE, _SHAFT_WIDTH, _SHAFT_DEPTH
    along = np.linspace(-22, 320, 48)
    shaft = tube(base + along[:, None] * scale * down, np.column_stack([np.interp(along, profile, width),
                                                                         np.interp(along, profile, depth)]) * scale,
                 around=28, roll=lateral)
    neck_t = np.linspace(0.6 * head / neck_length, 1.0, 10)   # from just inside the head's surface
    neck_radii = np.column_stack([np.interp(neck_t, [0.2, 0.45, 1.0], [0.8, 0.66, 0.95]),
                                  np.interp(neck_t, [0.2, 0.45, 1.0], [0.7, 0.55, 0.8])]) * head
    neck = tube(head_centre + (base - head_centre) * neck_t[:, None], neck_radii, around=24,
                roll=np.cross(towards_head, posterior))
    trochanters = [(base + frame @ np.array([14, 5, 16]) * scale, np.array([14, 14, 21]) * scale),  # greater
                   (base + frame @ np.array([-15, 9, -36]) * scale, np.array([8, 8, 12]) * scale)]  # lesser
    parts = {"head": superellipsoid(head_centre, (head,) * 3, rings=16, around=28), "neck": neck, "shaft": shaft,
             "greater": superellipsoid(*trochanters[0], frame, rings=10, around=18),
             "lesser": superellipsoid(*trochanters[1], frame, rings=8, around=14)}

    def inside(name, points):  # the solid's interior, as an implicit test (their meshes overlap)
        if name == "head":
            return np.linalg.norm(points - head_centre, axis=1) < head
        if name in ("greater", "lesser"):
            centre, radii = trochanters[name == "lesser"]
            return np.linalg.norm((points - centre) @ frame / radii, axis=1) < 1
        if name == "neck":
            t = (points - head_centre) @ (base - head_centre) / neck_length**2
            radial = np.linalg.norm(points - head_centre - t[:, None] * (base - head_centre), axis=1)
            return (t > neck_t[0]) & (t < 1) & (radial < np.interp(t, neck_t, neck_radii[:, 1]))
        a = (points - base) @ down / scale
        radial = np.linalg.norm(points - base - a[:, None] * scale * down, axis=1) / scale
        return (a > -22) & (radial < np.interp(a, profile, depth))

    def cortex(name, vertices, thickness):  # no cortex where a part's surface lies inside another part
        hidden = np.any([inside(other, vertices) for other in parts if other != name], axis=0)
        return np.where(hidden, 0.0, thickness)

    shaft_cortex = np.interp((shaft[0] - base) @ down / scale, [20, 90], [1.2, 5.5])
    canal_along = np.linspace(55, 330, 30)
    canal = tube(base + canal_along[:, None] * scale * down,
                 np.interp(canal_along, [55, 100, 330], [0.5, 8.5, 8.0])[:, None] * scale, around=20)
    thickness = {"head": 0.9, "neck": 1.1, "shaft": shaft_cortex, "greater": 0.8, "lesser": 1.0}
    density = {"greater": 0.8 * _MU_TRABECULAR}   # it overlaps the shaft; their paths add up
    solids = {name: Solid(*parts[name], density.get(name, _MU_TRABECULAR),
                          cortex(name, parts[name][0], thickness[name]), 14.0 if name == "shaft" else 10.0)
              for name in parts}
    axes = clinical.FemurAxes(head_centre, head, base, down, towards_head, lateral, scale, profile, width)
    return {**solids, "canal": Solid(*canal, _MU_MARROW - _MU_TRABECULAR)}, axes


def _lumbar_spine(sacrum: np.ndarray, rng: np.random.Generator) -> list[Solid]:
    """L5, L4 and L3 (pelvic frame) stacked on the S1 endplate: bodies, pedicles, transverse and
    spinous processes, laminae."""
    top = sacrum[sacrum[:, 2] > sacrum[:, 2].max() - 6]
    endplate = top[np.abs(top[:, 0]) < 20].mean(0) if np.any(np.abs(top[:, 0]) < 20) else top.mean(0)
    centre = endplate + np.array([0.0, -10.0, 22.0])
    solids = []
    for level, (width, depth, height, process) in enumerate([(26, 18, 13, 20), (25, 17, 13.5, 17), (24, 16.5, 13.5, 22)]):
        width *= rng.uniform(0.92, 1.08)
        back = centre[1] + depth
        solids.append(Solid(*superellipsoid(centre, (width, depth, height), squareness=0.35), _MU_TRABECULAR * 0.9, 1.1))
        for side in _SIDES.values():
            pedicle = np.array([[side * (width - 8), back - 4, centre[2] + 3], [side * (width - 6), back + 14, centre[2] + 3]])
            solids.append(Solid(*tube(np.linspace(pedicle[0], pedicle[1], 4), (5.0, 7.0), around=16),
                                _MU_TRABECULAR, 1.3))
            size = (process, 6 + 2 * (level == 0), 6 + 3 * (level == 0))
            solids.append(Solid(*superellipsoid((side * (width + process - 10), back + 12, centre[2] + 2), size,
                                                rings=8, around=14), _MU_TRABECULAR, 1.0))
        solids.append(Solid(*superellipsoid((0, back + 20, centre[2] - 2), (width - 6, 5, 11), rings=8, around=16),
                            _MU_TRABECULAR, 1.0))
        solids.append(Solid(*superellipsoid((0, back + 36, centre[2] - 8), (4, 14, 10), rings=8, around=14),
                            _MU_TRABECULAR, 1.0))
        centre = centre + np.array([0.0, -5.0 + 3 * level, 2 * height + 10 + rng.uniform(-1, 2)])
    return solids


def _bowel_gas(pose: Pose, rng: np.random.Generator) -> list[Solid]:
    """Gas in the colon and rectum (negative attenuation): short chains of irregular lumps, like
    gas-filled bowel segments, placed in the pelvic frame and moved to the table frame."""
    solids = []
    for _ in range(rng.integers(2, 8)):
        centre = np.array([rng.uniform(-130, 130), rng.uniform(-60, 20), rng.uniform(30, 230)])
        if rng.random() < 0.25:
            centre[[0, 2]] = rng.uniform(-15, 15), rng.uniform(-10, 40)  # rectal gas over the sacrum
        heading = rng.normal(size=3) * np.array([1, 0.3, 1])
        heading /= np.linalg.norm(heading)
        for _ in range(rng.integers(1, 5)):
            radii = np.array([rng.uniform(6, 22), rng.uniform(6, 18), rng.uniform(5, 16)])
            angle = rng.uniform(0, np.pi)
            turn = np.array([[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]])
            vertices, triangles = superellipsoid(centre, radii, turn, squareness=rng.uniform(0.6, 1.3),
                                                 rings=8, around=14)
            solids.append(Solid(pose.place(vertices), triangles, _MU_GAS * rng.uniform(0.6, 1.0)))
            centre = centre + heading * radii.max() * rng.uniform(1.2, 1.8)
    return solids


# --- One film -----------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def cached_shape_model(path: str | None) -> ShapeModel:
    """The shape model at `path` (None: the shipped one), read once per process."""
    return load_shape_model(path)


def make_pelvis(rng: np.random.Generator, size: int = 256, appearance: Appearance | None = None,
                pelvis: Pelvis | None = None, pose: Pose | None = None,
                model_path: str | os.PathLike | None = None) -> PelvisSample:
    """Render one AP pelvis radiograph with its bone masks (see PelvisSample).

    pelvis: a given pelvis in the pelvic frame (default: a random shape-model sample);
    pose: a given pose (default: random); appearance: the detector's ranges (default: Appearance()).
    """
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    pelvis = pelvis or cached_shape_model(None if model_path is None else str(model_path)).sample(rng)
    appearance = appearance or Appearance()
    plan = clinical.draw_plan(rng, appearance, fixed_pose=pose is not None)
    pose = pose or random_pose(rng)
    pose = clinical.adjust_pose(plan, pose) if plan else pose
    factor = _supersampling(size)
    fine = pose.detector(size).supersampled(factor)
    bones = {name: [Solid(pose.place(pelvis.vertices[name]), pelvis.triangles[name], _MU_TRABECULAR,
                          rng.uniform(0.8, 1.6), 9.0)] for name in BONES}
    femurs = {}
    for side, sign in _SIDES.items():
        centre, radius = pelvis.cups[f"{side}_hip"]
        parts, femurs[side] = _femur(pose.place(centre), radius, sign, pose.body_turn(), rng)
        if plan and side in plan.resected:  # the arthroplasty took head and neck; they stay in the mask
            parts.update({name: replace(parts[name], mu=0.0, cortex_mm=0.0) for name in ("head", "neck")})
        bones[f"{side}_femur"] = list(parts.values())
    spine = [Solid(pose.place(s.vertices), s.triangles, s.mu, s.cortex_mm)
             for s in _lumbar_spine(pelvis.vertices["sacrum"], rng)]
    gas = _bowel_gas(pose, rng)

    groups = [*STRUCTURES, "spine", "gas"]
    solids = [(groups.index(name), solid) for name, parts in bones.items() for solid in parts]
    solids += [(groups.index("spine"), s) for s in spine] + [(groups.index("gas"), s) for s in gas]
    projection = _project(fine, solids, len(groups))
    shape = (len(groups), fine.size, fine.size)
    coverage = dict(zip(STRUCTURES, projection.covered.reshape(shape)))
    paths = dict(zip(STRUCTURES, projection.path.reshape(shape)))
    # A bone's attenuation is never negative: that guards against a ray slipping through a tiny
    # hole of a mesh (one crossing missed); gas only ever lowers it.
    bone, gas_attenuation = np.maximum(projection.attenuation[:-1], 0).sum(0), projection.attenuation[-1]
    attenuation = bone * (1 + 0.08 * _trabecular_texture(rng, fine)) + np.minimum(gas_attenuation, 0)
    body = BodyOutline.random(rng, pose.hip_height)
    attenuation = attenuation.ravel() + soft_tissue_path(fine, body, pose.body_turn())
    foreign = _metal_and_lead(plan, pelvis, pose, femurs, fine) if plan else None
    if foreign is not None:
        attenuation = attenuation + foreign
        foreign = _block_mean((foreign > 1.5).reshape(fine.size, fine.size), factor) > 0.25  # metal or lead
    image, field_of_view = expose(attenuation.reshape(fine.size, fine.size), fine, rng, appearance, factor, plan,
                                  foreign)
    masks = {name: (_block_mean(coverage[name], factor) >= 0.5) & field_of_view for name in STRUCTURES}
    masks.update(separate_hips(masks, {name: _block_mean(paths[name], factor) for name in ("left_hip", "right_hip")}))
    detector = pose.detector(size)
    return PelvisSample(image, masks, *_midline(pose, detector), detector.spacing, pose,
                        plan.conditions if plan else ())


def _metal_and_lead(plan: clinical.Plan, pelvis: Pelvis, pose: Pose, femurs: dict, detector: Detector):
    """Attenuation (flattened pixels) of the plan's implants and shield; None when it has neither."""
    parts = clinical.implant_parts(plan, pelvis, pose, femurs)
    if not parts and not plan.shield:
        return None
    total = np.zeros(detector.size**2)
    if parts:
        metal = _project(detector, [(0, Solid(vertices, triangles, mu)) for vertices, triangles, mu in parts], 1)
        total += np.maximum(metal.attenuation[0], 0)   # hollow parts are negative solids inside positive ones
    if plan.shield:
        total += clinical.shield_attenuation(plan, pelvis, pose, detector)
    return total


def _project(detector: Detector, solids: list[tuple[int, Solid]], n_groups: int):
    """All solids through the projector in one pass (one mesh, per-triangle properties)."""
    offsets = np.cumsum([0] + [len(s.vertices) for _, s in solids])
    per_triangle = [(s.triangles + offset, np.full(len(s.triangles), g)) for (g, s), offset in zip(solids, offsets)]
    triangles = np.concatenate([t for t, _ in per_triangle])

    def each_triangle(values):
        return np.concatenate([np.full(len(s.triangles), float(v)) for (_, s), v in zip(solids, values)])

    return project_meshes(
        detector, np.concatenate([s.vertices for _, s in solids]), triangles,
        mu=each_triangle(s.mu for _, s in solids), cortex_mu=_MU_CORTEX - _MU_TRABECULAR,
        cortex_mm=np.concatenate([np.broadcast_to(np.asarray(s.cortex_mm, float), len(s.vertices)) for _, s in solids]),
        cortex_cap_mm=each_triangle(s.cortex_cap_mm for _, s in solids),
        group=np.concatenate([g for _, g in per_triangle]), n_groups=n_groups)


def _trabecular_texture(rng: np.random.Generator, detector: Detector) -> np.ndarray:
    """Band-pass noise with the spacing of trabeculae (~1-3 mm), unit standard deviation."""
    noise = rng.standard_normal((detector.size, detector.size), dtype=np.float32)
    px_per_mm = 1 / detector.spacing
    fine, coarse = (ndimage.gaussian_filter(noise, sigma * px_per_mm, truncate=3) for sigma in (0.6, 2.0))
    texture = fine - coarse
    return (texture / max(float(texture.std()), 1e-6)).ravel()


def _supersampling(size: int) -> int:
    """Rendering on a finer grid than the output keeps thin cortical lines smooth; from 512 px on,
    pixels are small enough (< 1 mm) to render directly."""
    return 2 if size < 512 else 1


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    n = array.shape[0] // factor
    return array.reshape(n, factor, n, factor).mean(axis=(1, 3))


def _midline(pose: Pose, detector: Detector) -> tuple[float, float]:
    """Column at the centre row and tilt of the projected pelvic axis (see PelvisSample)."""
    (x0, y0), (x1, y1) = detector.project(pose.place(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 100.0]])))
    centre_row = (detector.size - 1) / 2
    x = x0 + (x1 - x0) * (centre_row - y0) / (y1 - y0)
    return float(x), float(np.rad2deg(np.arctan2(x1 - x0, y0 - y1)))


def separate_hips(masks: dict[str, np.ndarray], path_mm: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The two hip masks without shared pixels: where both bones project (at the symphysis, more so
    under rotation), the pixel goes to the bone with the longer path through it. Partners never
    share a pixel, so mirroring, the label map and the dataset check stay unambiguous."""
    left, right = masks["left_hip"], masks["right_hip"]
    left_wins = path_mm["left_hip"] >= path_mm["right_hip"]
    both = left & right
    return {"left_hip": left & ~(both & ~left_wins), "right_hip": right & ~(both & left_wins)}
