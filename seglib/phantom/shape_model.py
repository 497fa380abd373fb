"""A statistical shape model of the adult pelvis, built from the 30 CT pelves of the I-STAR atlas.

The atlas (Han et al., Phys. Med. Biol. 64 (2019) 095022; CC BY 4.0; research and education, not
for clinical use) gives the left hip, right hip and sacrum (S1-S3) of each patient as triangle
meshes whose vertex k is the same anatomical point in every subject. One JOINT model is built over
the three bones, so a sample keeps the real relative position of the bones and the real left-right
asymmetry of a patient (it is never a mirrored copy of one side):

1. generalised Procrustes alignment, rigid only (rotation and translation; size stays part of the
   shape variation because patients differ in size);
2. the mean is put into the *pelvic frame*: origin halfway between the two acetabular centres,
   x from the right to the left acetabulum (patient's LEFT), y posterior, z superior, the tilt of
   the supine CT patients kept (an AP film is taken supine too);
3. PCA of the aligned shapes, keeping the modes that explain `VARIANCE_KEPT` of the variance.

Sampling draws the mode coefficients from a standard normal truncated at +-3 SD, so a sample stays
within the population. The fitted model ships inside the package (seglib/phantom/pelvis_shape_model.npz,
modes in float16) with the atlas attribution beside it; `python -m seglib atlas` rebuilds it.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from seglib.data.io import DataError
from seglib.data.outputs import check_output_file

BONES = ("left_hip", "right_hip", "sacrum")
_ATLAS_FILES = {"left_hip": "left/LeftHip{}_cpd.vtk", "right_hip": "right/RightHip{}_cpd.vtk",
                "sacrum": "sacrum/Sacrum{}_cpd.vtk"}
VARIANCE_KEPT = 0.97
COEFFICIENT_LIMIT_SD = 3.0
DEFAULT_MODEL = Path(__file__).parent / "pelvis_shape_model.npz"
_HIP_SIDES = {"left_hip": 1.0, "right_hip": -1.0}  # sign of the pelvic-frame x on each side


# --- Reading the atlas ----------------------------------------------------------------------------


def read_vtk_polydata(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float64 and triangles (M, 3) int of a legacy ASCII VTK POLYDATA file."""
    path = Path(path)
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read VTK file: {error}") from error
    points = re.search(r"^POINTS\s+(\d+)\s+\w+\s*$", text, re.M)
    polygons = re.search(r"^POLYGONS\s+(\d+)\s+(\d+)\s*$", text, re.M)
    if "ASCII" not in text[:300] or "POLYDATA" not in text[:300] or not points or not polygons:
        raise DataError(f"{path}: not an ASCII legacy VTK POLYDATA file with POINTS and POLYGONS")
    n_points, n_polygons = int(points.group(1)), int(polygons.group(1))
    try:
        coordinates = np.array(text[points.end():polygons.start()].split(), float)
        cells = np.array(text[polygons.end():].split()[:int(polygons.group(2))], int)
    except ValueError as error:
        raise DataError(f"{path}: malformed numbers in VTK file: {error}") from error
    if coordinates.size != 3 * n_points or cells.size != 4 * n_polygons or np.any(cells[::4] != 3):
        raise DataError(f"{path}: expected {n_points} points and {n_polygons} triangles, the data do not match")
    triangles = cells.reshape(-1, 4)[:, 1:]
    if triangles.min() < 0 or triangles.max() >= n_points:
        raise DataError(f"{path}: a triangle refers to a vertex that does not exist")
    return coordinates.reshape(-1, 3), triangles


@dataclass(frozen=True)
class Atlas:
    """Corresponding meshes of several subjects: vertices[s] holds the three bones one after another."""

    ids: tuple[str, ...]
    vertices: np.ndarray               # (subjects, vertices of all bones, 3), mm, each patient's CT frame
    triangles: dict[str, np.ndarray]   # bone -> (M, 3) indices into that bone's own vertices
    counts: dict[str, int]             # bone -> number of vertices


def atlas_ids(surfaces: str | Path) -> list[str]:
    """The subject ids of an atlas folder (those with a left hip mesh), in numeric order."""
    found = [m.group(1) for p in Path(surfaces, "left").glob("LeftHip*_cpd.vtk")
             if (m := re.fullmatch(r"LeftHip(\d+)_cpd\.vtk", p.name))]
    return sorted(found, key=int)


def load_atlas(surfaces: str | Path, exclude=(), ids=None) -> Atlas:
    """The atlas meshes of `ids` (default: every subject in the folder but `exclude`)."""
    surfaces = Path(surfaces)
    wanted = [str(i) for i in ids] if ids is not None else atlas_ids(surfaces)
    unknown = sorted(set(map(str, exclude)) - set(wanted)) if ids is None else []
    if unknown:
        raise DataError(f"{surfaces}: cannot exclude {', '.join(unknown)}: no such subject in the atlas")
    wanted = [i for i in wanted if i not in set(map(str, exclude))]
    if not wanted:
        raise DataError(f"{surfaces}: no atlas subjects (expected left/LeftHip<ID>_cpd.vtk, right/, sacrum/)")
    subjects, triangles, counts = [], {}, {}
    for subject in wanted:
        bones = []
        for bone in BONES:
            path = surfaces / _ATLAS_FILES[bone].format(subject)
            vertices, faces = read_vtk_polydata(path)
            if bone not in triangles:
                triangles[bone], counts[bone] = faces, len(vertices)
            elif len(vertices) != counts[bone] or not np.array_equal(faces, triangles[bone]):
                raise DataError(f"{path}: its mesh does not correspond vertex-for-vertex to subject {wanted[0]}'s")
            bones.append(vertices)
        subjects.append(np.concatenate(bones))
    return Atlas(tuple(wanted), np.stack(subjects), triangles, counts)


# --- Geometry helpers -----------------------------------------------------------------------------


def rigid_fit(moving: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising |moving @ R.T + t - target| (Kabsch, no scaling)."""
    mc, tc = moving.mean(0), target.mean(0)
    u, _, vt = np.linalg.svd((moving - mc).T @ (target - tc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, tc - mc @ rotation.T


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points: centre (3,), radius."""
    a = np.column_stack([2 * points, np.ones(len(points))])
    solution, *_ = np.linalg.lstsq(a, (points**2).sum(1), rcond=None)
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for outward-oriented triangles)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    face = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(normals, triangles[:, i], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def outward(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The triangles, flipped if needed so that their normals point out of the (nearly closed) mesh."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    signed_volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
    return triangles if signed_volume > 0 else triangles[:, ::-1].copy()


def close_holes(triangles: np.ndarray) -> np.ndarray:
    """The triangles plus a fan over each small hole (a loop of boundary edges), oriented like
    their neighbours, so that a ray meets the surface an even number of times."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    present = set(map(tuple, edges.tolist()))
    following = {a: b for a, b in edges.tolist() if (b, a) not in present}
    patches = []
    while following:
        start, loop = next(iter(following)), []
        vertex = start
        while vertex in following and (not loop or vertex != start):
            loop.append(vertex)
            vertex = following.pop(vertex)
        patches += [(loop[0], loop[i + 1], loop[i]) for i in range(1, len(loop) - 1)]
    return np.concatenate([triangles, np.array(patches, int).reshape(-1, 3)])


def find_acetabular_cup(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Indices of the vertices lining the acetabulum of one hip bone.

    The socket is the only deep, nearly spherical concavity of radius 20-32 mm: from each vertex of
    such a cup, the inward step of one radius along its outward normal lands on the same point, the
    centre of the femoral head. The radius and centre with the densest such votes win.
    """
    normals = vertex_normals(vertices, triangles)
    best = (0, None, None)
    for radius in np.arange(20.0, 33.0, 1.0):
        votes = vertices + radius * normals
        density = np.array([len(n) for n in cKDTree(votes).query_ball_point(votes, 3.0)])
        if density.max() > best[0]:
            best = (density.max(), votes[np.argmax(density)], radius)
    _, centre, radius = best
    votes = vertices + radius * normals
    near = np.linalg.norm(votes - centre, axis=1) < 6.0
    distance = np.linalg.norm(vertices - centre, axis=1)
    return np.flatnonzero(near & (np.abs(distance - radius) < 4.0))


# --- The model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pelvis:
    """One pelvis in the pelvic frame (mm): vertices and outward triangles per bone, and the
    acetabular centre and radius of each hip (fitted to the cup vertices)."""

    vertices: dict[str, np.ndarray]
    triangles: dict[str, np.ndarray]
    cups: dict[str, tuple[np.ndarray, float]]


@dataclass(frozen=True)
class ShapeModel:
    mean: np.ndarray                  # (V, 3) float32, pelvic frame
    modes: np.ndarray                 # (K, V, 3) float32, unit-norm principal directions
    sd: np.ndarray                    # (K,) standard deviation of each mode's coefficient, mm
    triangles: dict[str, np.ndarray]  # bone -> outward (M, 3) indices into that bone's vertices
    counts: dict[str, int]
    cup_indices: dict[str, np.ndarray]  # hip bone -> indices of its acetabular-cup vertices
    subjects: tuple[str, ...]
    variance_kept: float

    def shape(self, coefficients_sd) -> Pelvis:
        """The pelvis at the given mode coefficients (in SDs; missing trailing ones are 0)."""
        c = np.zeros(len(self.sd))
        c[:len(coefficients_sd)] = coefficients_sd
        return self.pelvis(self.mean + np.tensordot(c * self.sd, self.modes, 1))

    def sample(self, rng: np.random.Generator) -> Pelvis:
        """A random pelvis of the population: coefficients N(0, 1) truncated at +-3 SD."""
        return self.shape(np.clip(rng.standard_normal(len(self.sd)), -COEFFICIENT_LIMIT_SD, COEFFICIENT_LIMIT_SD))

    def align(self, vertices: np.ndarray) -> np.ndarray:
        """A subject's corresponding vertices (all bones stacked) moved rigidly onto the pelvic frame."""
        rotation, translation = rigid_fit(vertices, self.mean)
        return vertices @ rotation.T + translation

    def pelvis(self, vertices: np.ndarray) -> Pelvis:
        bones = dict(zip(BONES, np.split(np.asarray(vertices, float),
                                         np.cumsum([self.counts[b] for b in BONES])[:-1])))
        cups = {side: fit_sphere(bones[side][self.cup_indices[side]]) for side in _HIP_SIDES}
        return Pelvis(bones, self.triangles, cups)


def build_shape_model(atlas: Atlas, variance_kept: float = VARIANCE_KEPT, iterations: int = 10) -> ShapeModel:
    """Rigid generalised Procrustes + PCA of the atlas shapes (see the module docstring)."""
    if len(atlas.ids) < 3:
        raise DataError(f"a shape model needs at least 3 subjects, got {len(atlas.ids)}")
    shapes = atlas.vertices - atlas.vertices.mean(1, keepdims=True)
    mean = shapes[0]
    for _ in range(iterations):
        shapes = np.stack([s @ r.T + t for s in shapes for r, t in [rigid_fit(s, mean)]])
        mean = shapes.mean(0)
    offsets = dict(zip(BONES, np.cumsum([0] + [atlas.counts[b] for b in BONES])[:-1]))
    bone_vertices = {b: mean[offsets[b]:offsets[b] + atlas.counts[b]] for b in BONES}
    triangles = {b: outward(bone_vertices[b], close_holes(atlas.triangles[b])) for b in BONES}
    cups = {side: find_acetabular_cup(bone_vertices[side], triangles[side]) for side in _HIP_SIDES}
    frame = _pelvic_frame(*(fit_sphere(bone_vertices[side][cups[side]])[0] for side in ("right_hip", "left_hip")))
    shapes = (shapes - frame[1]) @ frame[0].T
    mean = shapes.mean(0)
    centred = (shapes - mean).reshape(len(shapes), -1)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2 / max(len(shapes) - 1, 1)
    keep = int(np.searchsorted(np.cumsum(variance) / variance.sum(), variance_kept) + 1)
    keep = min(keep, len(variance))
    return ShapeModel(mean.astype(np.float32), directions[:keep].reshape(keep, -1, 3).astype(np.float32),
                      np.sqrt(variance[:keep]), triangles, dict(atlas.counts), cups, atlas.ids,
                      float(variance[:keep].sum() / variance.sum()))


def _pelvic_frame(right_centre: np.ndarray, left_centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and origin taking CT coordinates to the pelvic frame: the smallest turn that lays the
    right-to-left acetabular line on x (so the CT's supine tilt is kept), origin halfway between them."""
    axis = (left_centre - right_centre) / np.linalg.norm(left_centre - right_centre)
    x = np.array([1.0, 0.0, 0.0])
    v, c = np.cross(axis, x), axis @ x
    skew = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + skew + skew @ skew / (1 + c), (left_centre + right_centre) / 2


# --- The shipped file -------------------------------------------------------------------------------


def build_atlas_model(atlas: str | Path, out: str | Path | None = None, exclude=(), force: bool = False) -> ShapeModel:
    """Build the shape model of the atlas folder's subjects (but `exclude`) and write it to `out`
    (default: the model shipped in the package, which this rebuilds). `out` is checked before the
    build: an existing file is replaced only with `force`, and only when it is a shape model."""
    if out is not None:
        check_output_file(out, [atlas], force, kind="shape model written by atlas", written_by_seglib=is_shape_model)
    model = build_shape_model(load_atlas(atlas, exclude=exclude))
    save_shape_model(model, DEFAULT_MODEL if out is None else out)
    return model


def is_shape_model(path: str | Path) -> bool:
    """Whether `path` is a shape model file save_shape_model wrote (recognised by its arrays)."""
    try:
        with zipfile.ZipFile(path) as stored:
            return {"mean.npy", "modes.npy", "counts.npy"} <= set(stored.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def save_shape_model(model: ShapeModel, path: str | Path) -> Path:
    """Write the model as a compressed .npz (modes in float16: plenty for millimetre shapes), replacing
    `path`: for the callers that write into their own work folders (build_atlas_model guards the user's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"mean": model.mean, "modes": model.modes.astype(np.float16), "sd": model.sd.astype(np.float32),
              "subjects": np.array(model.subjects), "variance_kept": np.float32(model.variance_kept),
              "counts": np.array([model.counts[b] for b in BONES])}
    arrays |= {f"triangles_{b}": model.triangles[b].astype(np.int16) for b in BONES}
    arrays |= {f"cup_{side}": model.cup_indices[side].astype(np.int16) for side in _HIP_SIDES}
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(partial, **arrays)
    partial.replace(path)
    return path


def load_shape_model(path: str | Path | None = None) -> ShapeModel:
    """The shape model stored at `path` (default: the one shipped in the package)."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    if not path.is_file():
        raise DataError(f"{path}: pelvis shape model not found; rebuild it with "
                        f"`python -m seglib atlas --atlas ../shared/data/pelvis_atlas --out {path}`")
    try:
        with np.load(path, allow_pickle=False) as stored:
            counts = dict(zip(BONES, (int(n) for n in stored["counts"])))
            model = ShapeModel(
                stored["mean"].astype(np.float32), stored["modes"].astype(np.float32), stored["sd"].astype(float),
                {b: stored[f"triangles_{b}"].astype(np.int64) for b in BONES}, counts,
                {side: stored[f"cup_{side}"].astype(np.int64) for side in _HIP_SIDES},
                tuple(str(s) for s in stored["subjects"]), float(stored["variance_kept"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable pelvis shape model ({type(error).__name__}: {error})") from error
    if model.mean.shape != (sum(counts.values()), 3) or model.modes.shape[1:] != model.mean.shape \
            or len(model.sd) != len(model.modes):
        raise DataError(f"{path}: pelvis shape model arrays have inconsistent shapes")
    return model
