"""What clinical films bring to the phantom: metal in the volume (total hip arthroplasty, dynamic hip
screw, cannulated and sacroiliac screws, plates), lead in the beam (gonadal shields), and what CR/DR
systems and radiographers do to a film (multi-scale unsharp masking, equalisation, low dose, burned-in
text, tight collimation, poses beyond the usual ranges).

`draw_plan` draws a film's conditions from the probabilities of its look (the fields of
seglib.phantom.exposure.Appearance named in CONDITION_FIELDS). Every part of the plan draws from its
own child of the film's generator (`rng.spawn`, which leaves the parent's stream untouched), so the
anatomy, the pose, the field and the exposure of a film are the same with or without a shield or an
implant.

The truth stays anatomical: metal and lead change the film, never the masks. A bone behind a shield
or around metal is still bone, and the femoral head and neck resected for an arthroplasty (their
attenuation removed) stay in the femur's mask.

Sizes are those of real implants (mm); attenuation is the excess over soft tissue per mm at 60-70 keV
(NIST mass attenuation times density), against ~0.05 for cortical bone in seglib.phantom.render:
steel and cobalt-chrome saturate the film, titanium is about four times cortical bone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from scipy.interpolate import make_interp_spline

from seglib.phantom.meshes import superellipsoid, tube

MU = {"cocr": 1.1, "steel": 0.9, "titanium": 0.19, "ceramic": 0.12, "cement": 0.025}
LEAD = (2.5, 4.5)   # line integral of a 0.5-1 mm lead-equivalent shield
SIDES = {"left": 1.0, "right": -1.0}   # sign of x (pelvic and table frames) on each patient side

# The look's probability of each condition (Appearance fields), in the order they are drawn.
CONDITION_FIELDS = ("implants", "shield", "wide_pose", "tight_field", "low_dose", "unsharp", "equalised", "text")
IMPLANT_KINDS = {"tha": 0.45, "dhs": 0.15, "cannulated": 0.12, "si_screw": 0.13, "plate": 0.15}
# "noise": quantum noise, whose Poisson draws vary in number with the image; from a stream of its own,
# what the film's generator draws after it (the field, the window) stays the same with or without metal.
_STREAMS = ("choose", "implants", "shield", "pose", "field", "dose", "processing", "text", "noise")

Part = tuple  # (vertices, triangles, mu): a closed mesh of one material, in the table frame


@dataclass(frozen=True)
class FemurAxes:
    """A proximal femur's frame (table frame, mm), from seglib.phantom.render: head centre and radius,
    the neck base on the shaft axis, unit vectors down the shaft, from the base to the head and
    lateral, the size scale, and the shaft's outer half-width profile (mm below the base / scale)."""

    head_centre: np.ndarray
    head_radius: float
    base: np.ndarray
    down: np.ndarray
    towards_head: np.ndarray
    lateral: np.ndarray
    scale: float
    profile: tuple
    half_width: tuple

    def along(self, point: np.ndarray) -> float:
        return float((point - self.base) @ self.down / self.scale)

    def surface(self, along: float, offset: float = 0.0) -> np.ndarray:
        """The point on the shaft's lateral surface `along` below the base, `offset` mm outside it."""
        width = np.interp(along, self.profile, self.half_width) * self.scale
        return self.base + along * self.scale * self.down + (width + offset) * self.lateral

    def lateral_exit(self, start: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Where a line from inside the bone leaves through the lateral cortex."""
        for step in np.arange(0.0, 200.0, 1.0):
            point = start + step * direction
            along = self.along(point)
            radial = (point - self.base - along * self.scale * self.down) @ self.lateral
            if radial >= np.interp(along, self.profile, self.half_width) * self.scale:
                return point
        return start + 200.0 * direction


@dataclass(frozen=True)
class Plan:
    """The conditions of one film and the generators its parts draw from."""

    implants: tuple = ()          # (kind, where): where = left/right, or symphysis for a plate
    shield: str | None = None     # female / male
    wide_pose: bool = False
    tight_field: bool = False
    low_dose: bool = False
    unsharp: bool = False
    equalised: bool = False
    text: bool = False
    reframe: bool = False         # the pose is random: a tight field may also shrink and move the film
    dose: float = 1.0             # share of the look's photons (low dose: 0.3-0.7)
    streams: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def conditions(self) -> tuple[str, ...]:
        """What the film got, for the manifest, e.g. ('tha_left', 'shield_female', 'unsharp')."""
        names = [f"{kind}_{where}" for kind, where in self.implants]
        names += [f"shield_{self.shield}"] if self.shield else []
        return tuple(names + [name for name in CONDITION_FIELDS[2:] if getattr(self, name)])

    @property
    def resected(self) -> set[str]:
        """The sides whose femoral head and neck an arthroplasty replaced."""
        return {where for kind, where in self.implants if kind == "tha"}


def is_clinical(look) -> bool:
    return any(getattr(look, name) > 0 for name in CONDITION_FIELDS)


def draw_plan(rng: np.random.Generator, look, fixed_pose: bool = False) -> Plan | None:
    """The conditions of one film (None for a look without any). Each condition is drawn
    independently of the others, from a fixed number of draws, so changing one probability of the
    look never changes what else a film gets. `fixed_pose`: the caller gave the pose; keep it."""
    if not is_clinical(look):
        return None
    streams = dict(zip(_STREAMS, rng.spawn(len(_STREAMS))))
    chance = streams["choose"].random(len(CONDITION_FIELDS))
    drawn = {name: bool(u < getattr(look, name)) for name, u in zip(CONDITION_FIELDS, chance)}
    implants = draw_implants(streams["implants"]) if drawn["implants"] else ()
    shield = str(streams["shield"].choice(["female", "male"])) if drawn["shield"] else None
    dose = float(streams["dose"].uniform(0.3, 0.7)) if drawn["low_dose"] else 1.0
    return Plan(implants, shield, drawn["wide_pose"] and not fixed_pose, drawn["tight_field"], drawn["low_dose"],
                drawn["unsharp"], drawn["equalised"], drawn["text"], not fixed_pose, dose, streams)


def draw_implants(rng: np.random.Generator) -> tuple:
    """Hardware as it comes: mostly arthroplasty (one or both sides), fixation of the proximal femur,
    of the pelvic ring (front and back often together), and a contralateral arthroplasty beside it."""
    kind = str(rng.choice(list(IMPLANT_KINDS), p=list(IMPLANT_KINDS.values())))
    if kind == "plate":
        where = [str(rng.choice(["symphysis", "left", "right"], p=[0.5, 0.25, 0.25]))]
    elif kind in ("tha", "si_screw"):
        where = {"left": ["left"], "right": ["right"], "both": ["left", "right"]}[
            str(rng.choice(["left", "right", "both"], p=[0.4, 0.4, 0.2]))]
    else:
        where = [str(rng.choice(["left", "right"]))]
    implants = [(kind, side) for side in where]
    extra = rng.random()
    if kind == "plate" and where == ["symphysis"] and extra < 0.5:
        implants.append(("si_screw", str(rng.choice(["left", "right"]))))
    elif kind in ("tha", "dhs", "cannulated") and len(where) == 1 and extra < 0.2:
        implants.append(("tha", "right" if where == ["left"] else "left"))
    return tuple(implants)


def adjust_pose(plan: Plan, pose):
    """A pose beyond the usual ranges (a patient who could not lie straight), and for a tight field
    on a random pose, a smaller film centred off the hips, so the crests, ischia or femora are cut."""
    rng = plan.streams["pose"]
    if plan.wide_pose:
        sign = rng.choice([-1.0, 1.0], 2)
        pose = replace(pose, tilt=sign[0] * rng.uniform(10, 20), rotation=sign[1] * rng.uniform(8, 15),
                       obliquity=rng.uniform(-10, 10))
    if plan.tight_field and plan.reframe and rng.random() < 0.6:
        pose = replace(pose, field_of_view=rng.uniform(300, 370),
                       centre_offset=(rng.uniform(-45, 45), rng.uniform(-25, 100)))
    return pose


# --- Metal ---------------------------------------------------------------------------------------


def implant_parts(plan: Plan, pelvis, pose, femurs: dict[str, FemurAxes]) -> list[Part]:
    """The plan's hardware as meshes in the table frame."""
    rng = plan.streams["implants"]
    parts = []
    for kind, where in plan.implants:
        if kind in ("tha", "dhs", "cannulated"):
            parts += _FEMORAL[kind](femurs[where], rng)
        if kind == "tha":
            parts += _placed(_cup(pelvis.cups[f"{where}_hip"], SIDES[where], rng), pose)
        if kind == "si_screw":
            parts += _placed(_si_screws(pelvis.vertices["sacrum"], SIDES[where], rng), pose)
        if kind == "plate":
            parts += _placed(_plate(pelvis, where, rng), pose)
    return parts


def _placed(parts: list[Part], pose) -> list[Part]:
    return [(pose.place(vertices), triangles, mu) for vertices, triangles, mu in parts]


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, float)
    return vector / np.linalg.norm(vector)


def _rod(points: np.ndarray, radii, around: int = 14):
    """A tube of round cross-section along `points` (any direction)."""
    points = np.asarray(points, float)
    axis = points[-1] - points[0]
    roll = np.eye(3)[np.argmin(np.abs(axis))]   # never along the axis
    radii = np.broadcast_to(np.asarray(radii, float), len(points))
    return tube(points, np.column_stack([radii, radii]), around=around, roll=roll)


def _screw(tip, tail, metal: float, radius: float, core: float, thread: float, head: float = 0.0,
           washer: bool = False, cannulated: bool = False) -> list[Part]:
    """A screw from its tip to its tail: threads (radius) over `thread` mm, a shaft (core), a head
    or a washer, and the hollow core of a cannulated screw (a lucent line along it)."""
    axis = _unit(np.asarray(tail) - tip)
    length = float(np.linalg.norm(np.asarray(tail) - tip))
    along = np.append(np.arange(0.0, length, 1.375), length)   # half the pitch of a 2.75 mm thread
    ridge = np.where(np.arange(len(along)) % 2 == 0, radius, core + 0.3 * (radius - core))
    radii = np.where(along < thread, ridge, core)
    radii[0] = 0.6 * core
    parts = [(*_rod(tip + along[:, None] * axis, radii), metal)]
    if head:
        parts.append((*_rod([tail - axis, tail + 3.5 * axis], head), metal))
    if washer:
        parts.append((*_rod([tail - 0.5 * axis, tail + axis], 6.5, around=20), metal))
    if cannulated:
        parts.append((*_rod([tip + 2 * axis, tail - axis], 1.3, around=10), -metal))
    return parts


def _hemisphere(centre, radius: float, opening, mu: float) -> Part:
    """A solid hemisphere whose flat face (the opening) faces `opening`."""
    angle = np.linspace(0, 0.49 * np.pi, 14)
    points = np.asarray(centre) - np.outer(radius * np.sin(angle), _unit(opening))
    return (*_rod(points, radius * np.cos(angle), around=32), mu)


def _cup(cup, side: float, rng: np.random.Generator) -> list[Part]:
    """The acetabular shell (44-62 mm, mostly titanium) at 40-45 degrees of inclination and ~15 of
    anteversion, with 0-2 dome screws; its polyethylene liner is lucent (pelvic frame)."""
    centre, radius = cup
    outer = float(np.clip(radius + rng.uniform(0.0, 2.5), 22, 31))
    inclination, anteversion = np.deg2rad(rng.normal(42, 6)), np.deg2rad(rng.normal(15, 7))
    opening = np.array([side * np.sin(inclination) * np.cos(anteversion), -np.sin(anteversion),
                        -np.cos(inclination) * np.cos(anteversion)])
    metal = MU["titanium"] if rng.random() < 0.8 else MU["cocr"]
    shell = outer - rng.uniform(3.0, 5.0)
    parts = [_hemisphere(centre, outer, opening, metal), _hemisphere(centre, shell, opening, -metal)]
    for _ in range(rng.integers(0, 3)):
        direction = _unit(-opening + rng.normal(0, 0.3, 3) + np.array([-side * 0.2, 0.2, 0.4]))
        parts += _screw(centre + direction * (outer + rng.uniform(15, 35)), centre + direction * (shell - 1),
                        MU["titanium"], 3.25, 2.2, 40.0, head=4.0)
    return parts


def _arthroplasty_stem(femur: FemurAxes, rng: np.random.Generator) -> list[Part]:
    """The metal head (28, 32 or 36 mm) on a stem curving from the neck into the canal, 110-150 mm
    below the neck base: cemented (cobalt-chrome or steel in a mantle of cement) or not (titanium)."""
    head_metal = MU["cocr"] if rng.random() < 0.8 else MU["ceramic"]
    parts = [(*superellipsoid(femur.head_centre, (rng.choice([14.0, 16.0, 18.0]),) * 3, rings=16, around=28),
              head_metal)]
    cemented = rng.random() < 0.45
    metal = MU[str(rng.choice(["cocr", "steel"]))] if cemented else MU["titanium"]
    length = rng.uniform(110, 150)
    t = np.linspace(0, 1, 48)[:, None]
    control = [femur.head_centre, femur.base, femur.base + length * femur.down]
    path = (1 - t) ** 2 * control[0] + 2 * (1 - t) * t * control[1] + t**2 * control[2]
    travelled = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    neck_end = 0.55 * np.linalg.norm(control[1] - control[0])
    shape = [0, neck_end, neck_end + 20, neck_end + 65, travelled[-1]]
    neck, body, middle, tip = rng.uniform(5.5, 7.0), rng.uniform(12, 16), rng.uniform(6.5, 8), rng.uniform(4, 5.5)
    half_ml = np.interp(travelled, shape, [neck, neck, body, middle, tip])
    half_ap = np.interp(travelled, shape, [neck, neck, rng.uniform(7, 9), middle, tip])
    parts.append((*tube(path, np.column_stack([half_ml, half_ap]), around=24, roll=femur.lateral), metal))
    if cemented:
        body_part = travelled > neck_end + 5
        mantle = np.column_stack([half_ml, half_ap])[body_part] + rng.uniform(1.5, 3.5)
        parts.append((*tube(path[body_part], mantle, around=24, roll=femur.lateral), MU["cement"]))
    return parts


def _neck_frame(femur: FemurAxes) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors across the femoral neck: towards the calcar (inferior) and front to back."""
    inferior = _unit(femur.down - (femur.down @ femur.towards_head) * femur.towards_head)
    return inferior, np.cross(femur.towards_head, inferior)


def _dynamic_hip_screw(femur: FemurAxes, rng: np.random.Generator) -> list[Part]:
    """A lag screw (8 mm shaft, 12.5 mm thread) along the neck to 6-12 mm from the head's apex, a
    38 mm barrel from the lateral cortex, and a side plate with 2-5 cortical screws across the shaft."""
    inferior, _ = _neck_frame(femur)
    axis = femur.towards_head
    tip = femur.head_centre + axis * (femur.head_radius - rng.uniform(6, 12)) + inferior * rng.normal(2, 3)
    entry = femur.lateral_exit(tip, -axis)
    metal = MU["steel"] if rng.random() < 0.7 else MU["titanium"]
    parts = _screw(tip, entry + 30 * axis, metal, 6.25, 4.0, rng.uniform(20, 28))
    parts.append((*_rod([entry - 3 * axis, entry + 38 * axis], 6.5, around=20), metal))
    top = femur.along(entry) - 12
    holes = int(rng.integers(2, 6))
    length = 20 + 16 * holes
    along = np.linspace(top, top + length, 24)
    plate = np.array([femur.surface(a, 3.0) for a in along])
    parts.append((*tube(plate, (3.0, 9.5), around=20, roll=femur.lateral), metal))
    for hole in range(holes):
        a = top + 26 + 16 * hole
        width = np.interp(a, femur.profile, femur.half_width) * femur.scale
        parts += _screw(femur.surface(a, -2 * width - 3), femur.surface(a, 6.0), metal, 2.25, 1.6, 90.0, head=4.0)
    return parts


def _cannulated_screws(femur: FemurAxes, rng: np.random.Generator) -> list[Part]:
    """Three parallel cannulated screws (6.5 or 7.3 mm, 16 or 32 mm of thread) in an inverted
    triangle across the neck, from the lateral cortex to 5-9 mm below the head's surface."""
    inferior, front = _neck_frame(femur)
    radius = float(rng.choice([3.25, 3.65]))
    spread = femur.head_radius * rng.uniform(0.28, 0.36)
    metal = MU["titanium"] if rng.random() < 0.5 else MU["steel"]
    thread = float(rng.choice([16.0, 32.0]))
    axis = _unit(femur.towards_head + rng.normal(0, 0.03, 3))
    parts = []
    for offset in (inferior * spread, -inferior * 0.7 * spread + front * spread, -inferior * 0.7 * spread - front * spread):
        reach = np.sqrt(max((femur.head_radius - rng.uniform(5, 9)) ** 2 - offset @ offset, 1.0))
        tip = femur.head_centre + offset + axis * reach
        tail = femur.lateral_exit(tip, -axis) - axis * rng.uniform(0, 4)
        parts += _screw(tip, tail, metal, radius, 2.4, thread, washer=rng.random() < 0.5, cannulated=True)
    return parts


_FEMORAL = {"tha": _arthroplasty_stem, "dhs": _dynamic_hip_screw, "cannulated": _cannulated_screws}


def _si_screws(sacrum: np.ndarray, side: float, rng: np.random.Generator) -> list[Part]:
    """One or two iliosacral screws (7.3 mm, cannulated) from the outer iliac table across the
    sacroiliac joint into the bodies of S1 (and S2), 75-110 mm (pelvic frame)."""
    central = sacrum[np.abs(sacrum[:, 0]) < 15]
    s1 = central[central[:, 2] > central[:, 2].max() - 30].mean(0)
    metal = MU["titanium"] if rng.random() < 0.5 else MU["steel"]
    parts = []
    for level in range(1 + int(rng.random() < 0.3)):
        tip = s1 + np.array([side * rng.uniform(-12, 8), rng.uniform(-5, 5), -level * rng.uniform(22, 30)])
        direction = _unit([side, rng.uniform(0.05, 0.35), rng.uniform(-0.15, 0.1)])
        parts += _screw(tip, tip + direction * rng.uniform(75, 110), metal, 3.65, 2.4, float(rng.choice([16, 32])),
                        washer=True, cannulated=True)
    return parts


def _near_bone(vertices: np.ndarray, x: float, z: float, fallback: float) -> float:
    """The mean depth (y) of the bone's vertices near (x, z), where a plate on it lies."""
    near = vertices[(np.abs(vertices[:, 0] - x) < 8) & (np.abs(vertices[:, 2] - z) < 8)]
    return float(near[:, 1].mean()) if len(near) else fallback


def _plate(pelvis, where: str, rng: np.random.Generator) -> list[Part]:
    """A reconstruction plate (3.2 mm thick, 10 mm wide with scalloped edges, 3.5 mm screws) on the
    upper pubis across the symphysis, or along one pelvic brim from the pubis to above the
    acetabulum (pelvic frame)."""
    hip = np.vstack([pelvis.vertices["left_hip"], pelvis.vertices["right_hip"]])
    symphysis = hip[np.abs(hip[:, 0]) < 10]
    top, front = symphysis[:, 2].max(), symphysis[:, 1].mean()
    if where == "symphysis":
        half = rng.uniform(22, 42)
        waypoints = [(x, top + 2 - 0.004 * x**2 + 0.12 * abs(x)) for x in np.linspace(-half, half, 5)]
    else:
        side = SIDES[where]
        (cx, _, cz), radius = pelvis.cups[f"{where}_hip"]
        inner = abs(cx) - radius
        waypoints = [(side * 8, top + 2), (side * 0.5 * inner, top + 0.45 * (cz - top) + 6),
                     (side * (inner - 4), cz + 0.6 * radius), (side * (inner - rng.uniform(8, 20)), cz + radius + 35)]
    waypoints = np.array([(x, _near_bone(hip, x, z, front), z) for x, z in waypoints])
    along = np.linspace(0, 1, len(waypoints))
    samples = np.linspace(0, 1, 60)
    path = make_interp_spline(along, waypoints, k=min(3, len(waypoints) - 1))(samples)
    travelled = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    width = 5.0 - 1.2 * (np.cos(2 * np.pi * travelled / 12.0) > 0.3)   # scallops between the holes
    facing = np.deg2rad(rng.uniform(30, 60))   # the upper pubis faces up and forwards
    roll = np.array([0.0, np.cos(facing), np.sin(facing)])
    metal = MU["steel"] if rng.random() < 0.75 else MU["titanium"]
    parts = [(*tube(path, np.column_stack([width, np.full(len(path), 1.6)]), around=16, roll=roll), metal)]
    into_bone = np.array([0.0, np.sin(facing), -np.cos(facing)]) if where == "symphysis" else np.array([0, 1.0, 0])
    for hole in np.arange(6.0, travelled[-1] - 3, 12.0):
        if rng.random() < 0.6:
            at = path[np.searchsorted(travelled, hole)]
            direction = _unit(into_bone + rng.normal(0, 0.2, 3))
            parts += _screw(at + direction * rng.uniform(25, 45), at - direction * 1.5, metal, 1.75, 1.25, 60.0,
                            head=3.0)
    return parts


# --- Lead ----------------------------------------------------------------------------------------


def shield_attenuation(plan: Plan, pelvis, pose, detector) -> np.ndarray:
    """The gonadal shield on the belly, rasterised on the detector (attenuation per pixel, flat).

    Female: an ovarian shield over the pubis and the medial hips (its lower edge near the top of the
    symphysis); male: a testicular shield below the symphysis. Offset, turned and now and then
    misplaced, as radiographers place them."""
    rng = plan.streams["shield"]
    hip = np.vstack([pelvis.vertices["left_hip"], pelvis.vertices["right_hip"]])
    symphysis = hip[np.abs(hip[:, 0]) < 10]
    if plan.shield == "female":
        top_width, height = rng.uniform(70, 120), rng.uniform(50, 80)
        bottom_width = top_width * rng.uniform(0.45, 0.75)
        centre_z = symphysis[:, 2].max() + rng.uniform(-30, 10) + height / 2
    else:
        top_width, height = rng.uniform(50, 75), rng.uniform(60, 90)
        bottom_width = top_width * rng.uniform(0.5, 0.8)
        centre_z = symphysis[:, 2].min() - rng.uniform(-10, 25) - height / 2
    shift = rng.normal(0, 10, 2) + (rng.choice([-1, 1]) * rng.uniform(30, 60) * np.array([1, 0.4])
                                    if rng.random() < 0.15 else 0)
    outline = _shield_outline(top_width, bottom_width, height, np.deg2rad(rng.uniform(-15, 15)))
    centre = np.array([shift[0], symphysis[:, 1].mean(), centre_z + shift[1]])
    points = pose.place(centre + outline)
    points[:, 1] = -pose.hip_height - rng.uniform(60, 150)   # flat on the belly, in front of the hips
    canvas = Image.new("L", (detector.size, detector.size))
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in detector.project(points)], fill=255)
    return (np.asarray(canvas, float) / 255 * rng.uniform(*LEAD)).ravel()


def _shield_outline(top_width: float, bottom_width: float, height: float, turn: float) -> np.ndarray:
    """A rounded trapezoid (wide at the top), turned in the coronal plane; (x, 0, z) points."""
    angle = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    u, v = (np.sign(f) * np.abs(f) ** 0.6 for f in (np.cos(angle), np.sin(angle)))
    x = u * (bottom_width + (top_width - bottom_width) * (v + 1) / 2) / 2
    z = v * height / 2
    return np.column_stack([x * np.cos(turn) - z * np.sin(turn), np.zeros_like(x), x * np.sin(turn) + z * np.cos(turn)])


# --- Processing and presentation -----------------------------------------------------------------


def split_saturated(measured: np.ndarray, anatomy: np.ndarray, opaque: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The film clamped at the top of the anatomy's histogram, and what metal and lead (`opaque`)
    get above it. A CR/DR system windows on the anatomy: the processing works on the clamped film,
    which gives halos at the edges of metal as on a real film, and the excess, added back, lies well
    above the window (scatter alone would leave metal barely above bone), so metal and lead saturate."""
    low, top = np.percentile(measured[anatomy], [1, 99.5])
    clamped = np.minimum(measured, top)
    above = np.clip((measured - clamped) / max(top - low, 1e-9), 0, 1)
    return clamped, np.where(opaque, (top - low) * (0.6 + 0.4 * above), 0.0)


def process(plan: Plan, measured: np.ndarray, mm: float) -> np.ndarray:
    """Equalisation (a strong cut of the large-scale trend, latitude reduction) and multi-scale
    unsharp masking (band-pass layers boosted, small details more than large edges, the way CR/DR
    processing makes its crisp cortices and its halos around metal)."""
    rng = plan.streams["processing"]
    if plan.equalised:
        sigma = rng.uniform(12, 40) / mm
        coarse = ndimage.gaussian_filter(measured[::4, ::4], sigma / 4, mode="nearest")
        trend = ndimage.zoom(coarse, np.array(measured.shape) / coarse.shape, order=1, mode="nearest")
        measured = measured - rng.uniform(0.6, 0.9) * trend
    if plan.unsharp:
        measured = _multiscale(measured, mm, rng)
    return measured


def _multiscale(image: np.ndarray, mm: float, rng: np.random.Generator) -> np.ndarray:
    """Bands of 0.8 to 13 mm: the two finest (mostly quantum noise) kept near as they are, the
    others boosted, their small amplitudes more than their large ones (the edges of bone and metal)."""
    levels = [image] + [ndimage.gaussian_filter(image, sigma / mm) for sigma in (0.8, 1.6, 3.2, 6.4, 12.8)]
    power = rng.uniform(0.65, 0.85)
    result = levels[-1]
    for scale, (fine, coarse) in enumerate(zip(levels, levels[1:])):
        band = fine - coarse
        if scale < 2:
            result = result + rng.uniform(0.8, 1.3) * band
            continue
        spread = max(float(np.percentile(np.abs(band), 90)), 1e-9)
        result = result + rng.uniform(1.3, 2.5) * spread * np.sign(band) * (np.abs(band) / spread) ** power
    return result


_NAMES = ("DOE^JANE", "SMITH^JOHN", "MUELLER^ANNA", "GARCIA^LUIS", "NGUYEN^MAI", "ROSSI^PAOLO", "ANON")
_LINES = ("AP PELVIS", "PELVIS AP", "SUPINE", "PORTABLE", "POST-OP", "WEIGHT BEARING", "HIP BOTH", "BECKEN A.P.")


def burn_in(plan: Plan, shown: np.ndarray) -> np.ndarray:
    """Burned-in text and digital markers: the patient, dates and exposure in corners, a side letter
    in a box, sometimes a ruler; white (or black) on the film, over bone as anywhere."""
    rng = plan.streams["text"]
    size = shown.shape[0]
    canvas = Image.new("L", (size, size))
    draw = ImageDraw.Draw(canvas)
    height = max(int(size * rng.uniform(0.018, 0.032)), 7)
    font = ImageFont.load_default(size=height)
    corners = rng.permutation(4)[: rng.integers(1, 4)]
    for corner in corners:
        lines = [str(rng.choice(_NAMES)), f"ID {rng.integers(10**6, 10**7)}",
                 f"{rng.integers(1, 29):02d}.{rng.integers(1, 13):02d}.{rng.integers(1995, 2025)}",
                 str(rng.choice(_LINES)), f"{rng.integers(65, 90)} kV  {rng.uniform(5, 40):.1f} mAs"]
        lines = lines[: rng.integers(2, 6)]
        x = int(0.02 * size) if corner % 2 == 0 else int(size * rng.uniform(0.62, 0.72))
        y = int(0.02 * size) if corner < 2 else int(size - 0.03 * size - len(lines) * 1.25 * height)
        draw.multiline_text((x, y), "\n".join(lines), fill=255, font=font, spacing=height // 4)
    if rng.random() < 0.6:
        x, y = int(size * rng.uniform(0.05, 0.85)), int(size * rng.uniform(0.1, 0.3))
        draw.rectangle((x - 3, y - 3, x + 1.6 * height, y + 1.6 * height), outline=255, width=max(1, height // 8))
        draw.text((x, y), str(rng.choice(["L", "R", "LT", "RT"])), fill=255, font=ImageFont.load_default(size=int(1.4 * height)))
    if rng.random() < 0.3:
        x = int(size * rng.choice([0.03, 0.95]))
        for tick in range(0, int(size * 0.4), max(size // 60, 2)):
            draw.line((x, int(size * 0.3) + tick, x + (6 if tick % 5 == 0 else 3), int(size * 0.3) + tick), fill=255)
    ink = np.asarray(canvas, float) / 255
    value = 1.0 if rng.random() < 0.8 else 0.0
    return shown * (1 - ink) + value * ink


def tight_field(plan: Plan, size: int) -> np.ndarray:
    """Collimator blades well inside the film (two to four edges), cutting the iliac crests, the
    ischia or the femora; the masks are cut with the field."""
    rng = plan.streams["field"]
    margins = rng.uniform(0.06, 0.18, 4) * (rng.random(4) < 0.6)
    if np.count_nonzero(margins) < 2:
        margins[rng.permutation(4)[:2]] = rng.uniform(0.06, 0.18, 2)
    top, bottom, left, right = (int(m * size) for m in margins)
    exposed = np.zeros((size, size), bool)
    exposed[top:size - bottom, left:size - right] = True
    return exposed
