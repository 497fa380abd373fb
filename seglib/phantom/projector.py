"""Divergent-beam projection of closed triangle meshes onto a flat detector (all numpy, no loops
over triangles).

Geometry (the *table frame*, mm): x to the patient's LEFT, y posterior, z superior. The patient lies
supine; the X-ray source is in front (small y), the detector is the plane y = `detector_y`, and the
image is seen as a radiologist sees an AP film: the patient's left on the image's right (column
grows with x), the head at the top (row grows with -z).

For every triangle the pixel centres of its (small) bounding box on the detector are tested with
barycentric coordinates, for all triangles at once (grouped by bounding-box size), and the results
are accumulated per pixel with np.bincount:

- path length through the solid: each crossing of the ray with the surface adds its distance from
  the source, with + where the ray leaves (normal along the ray) and - where it enters; the sum is
  the length inside. A small hole only loses a crossing, so the sum is clipped at 0;
- cortical shell: a shell of thickness c is crossed over c / |cos(angle between ray and normal)|,
  so rays that graze the surface (the acetabular roof, the pelvic brim, the teardrop) see a long
  path through cortex and draw the white lines of a real film; capped where the angle nears 90°;
- coverage: whether any triangle covers the pixel centre, the mask of the projected solid (robust
  to holes, since it needs no inside/outside).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detector:
    """A square detector of `size` pixels of `spacing` mm; its centre (x, z) faces the source."""

    size: int
    spacing: float          # mm per pixel at the detector
    centre: tuple[float, float]
    detector_y: float       # plane of the detector (mm, table frame)
    source_distance: float  # source-to-detector distance (mm)

    @property
    def source(self) -> np.ndarray:
        return np.array([self.centre[0], self.detector_y - self.source_distance, self.centre[1]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points -> (..., 2) pixel coordinates (column, row); pixel centres are integers."""
        source = self.source
        scale = self.source_distance / (points[..., 1] - source[1])
        u = (points[..., 0] - source[0]) * scale
        w = (points[..., 2] - source[2]) * scale
        half = (self.size - 1) / 2
        return np.stack([u / self.spacing + half, -w / self.spacing + half], axis=-1)

    def rays(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Unit directions from the source to the centres of the given pixels, (..., 3)."""
        half = (self.size - 1) / 2
        direction = np.stack([(cols - half) * self.spacing, np.full(np.shape(cols), self.source_distance),
                              -(rows - half) * self.spacing], axis=-1)
        return direction / np.linalg.norm(direction, axis=-1, keepdims=True)

    def supersampled(self, factor: int) -> Detector:
        return Detector(self.size * factor, self.spacing / factor, self.centre, self.detector_y, self.source_distance)


@dataclass
class Projection:
    """Per-pixel results of projecting a set of solids (flattened images of detector.size**2)."""

    attenuation: np.ndarray  # (groups, pixels): sum of mu * path inside + cortex_mu * path through the shell
    path: np.ndarray         # (groups, pixels): length inside each group's solids (mm)
    covered: np.ndarray      # (groups, pixels) bool: the pixel centre lies in the group's projection


def project_meshes(detector: Detector, vertices: np.ndarray, triangles: np.ndarray, mu: np.ndarray,
                   cortex_mu: float, cortex_mm: np.ndarray, cortex_cap_mm: np.ndarray, group: np.ndarray,
                   n_groups: int) -> Projection:
    """Project closed meshes with outward triangles, all at once; see the module docstring.

    Per triangle: mu (attenuation per mm inside its solid), cortex_cap_mm, group (which path and
    coverage image it adds to). Per vertex: cortex_mm (shell thickness, interpolated over triangles).
    """
    n_pixels = detector.size**2
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    length = np.linalg.norm(normals, axis=1)
    keep = length > 1e-9
    normals /= np.where(keep, length, 1)[:, None]
    plane = np.einsum("ij,ij->i", normals, a - detector.source)  # n.(a - source)
    thickness = cortex_mm[triangles]
    tri, pixels, weights = _covered_pixels(detector.project(np.stack([a, b, c], 1)), keep, detector.size)
    rays = detector.rays(pixels % detector.size, pixels // detector.size)
    cosine = np.maximum(np.abs(np.einsum("ij,ij->i", normals[tri], rays)), 1e-6)
    depth = plane[tri] / cosine  # + distance where the ray leaves, - where it enters
    shell = np.minimum(np.einsum("ij,ij->i", weights, thickness[tri]) / cosine, cortex_cap_mm[tri])
    slot = group[tri] * n_pixels + pixels
    attenuation = np.bincount(slot, mu[tri] * depth + cortex_mu * shell, n_groups * n_pixels)
    path = np.bincount(slot, depth, n_groups * n_pixels)
    hits = np.bincount(slot, minlength=n_groups * n_pixels)
    shape = (n_groups, n_pixels)
    return Projection(attenuation.reshape(shape), np.maximum(path, 0.0).reshape(shape), hits.reshape(shape) > 0)


def _covered_pixels(corners: np.ndarray, keep: np.ndarray, size: int):
    """(triangle index, flat pixel index, barycentric weights) of every pixel centre inside a
    projected triangle, evaluated in groups of triangles whose bounding boxes fit the same window."""
    found = list(_covered_pixels_by_window(corners, keep, size))
    return tuple(np.concatenate(parts) for parts in zip(*found))


def _covered_pixels_by_window(corners: np.ndarray, keep: np.ndarray, size: int):
    low = np.maximum(np.ceil(corners.min(1)).astype(int), 0)
    high = np.minimum(np.floor(corners.max(1)).astype(int), size - 1)
    extent = high - low + 1
    (x0, y0), (x1, y1), (x2, y2) = (corners[:, i].T for i in range(3))
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    valid = keep & (np.abs(area) > 1e-12) & np.all(extent >= 1, axis=1)
    area = np.where(valid, area, 1.0)
    # barycentric weights w1, w2 are affine in (col, row): w = a * col + b * row + c
    planes = np.column_stack([(y2 - y0), -(x2 - x0), -(x0 * (y2 - y0) - (x2 - x0) * y0),
                              -(y1 - y0), (x1 - x0), (x0 * (y1 - y0) - (x1 - x0) * y0)]) / area[:, None]
    # windows of power-of-two width and height: little wasted work, few groups
    window = 2 ** np.ceil(np.log2(np.maximum(extent, 1))).astype(int)
    key = np.where(valid, window[:, 0] * 65536 + window[:, 1], -1)
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for tri in np.split(order, bounds):
        if key[tri[0]] < 0:
            continue
        width, height = window[tri[0]]
        cols = (low[tri, 0, None, None] + np.arange(width)[None, None, :]).repeat(height, 1)
        rows = (low[tri, 1, None, None] + np.arange(height)[None, :, None]).repeat(width, 2)
        inside_box = (cols <= high[tri, 0, None, None]) & (rows <= high[tri, 1, None, None])
        t = np.broadcast_to(tri[:, None, None], cols.shape)[inside_box]
        cols, rows = cols[inside_box], rows[inside_box]
        p = planes[t]
        w1 = p[:, 0] * cols + p[:, 1] * rows + p[:, 2]
        w2 = p[:, 3] * cols + p[:, 4] * rows + p[:, 5]
        w0 = 1 - w1 - w2
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        yield t[inside], rows[inside] * size + cols[inside], np.column_stack([w0, w1, w2])[inside]
