"""Closed triangle meshes of simple solids, for the anatomy the atlas lacks (femurs, lumbar
vertebrae): superellipsoids and tubes swept along a path with a varying elliptic cross-section.
Triangles are outward-oriented, as the projector expects."""

from __future__ import annotations

import numpy as np


def _grid_triangles(rings: int, around: int) -> np.ndarray:
    """Triangles joining consecutive rings of `around` vertices (ring-major), wrapping around."""
    i, j = np.meshgrid(np.arange(rings - 1), np.arange(around), indexing="ij")
    a, b = i * around + j, i * around + (j + 1) % around
    c, d = a + around, b + around
    return np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])


def _capped(vertices: np.ndarray, rings: int, around: int) -> tuple[np.ndarray, np.ndarray]:
    """Close a ring grid with a fan at each end; oriented outward by the signed volume."""
    first, last = len(vertices), len(vertices) + 1
    vertices = np.vstack([vertices, vertices[:around].mean(0), vertices[-around:].mean(0)])
    j = np.arange(around)
    start = np.stack([np.full(around, first), (j + 1) % around, j], -1)
    end_ring = (rings - 1) * around
    end = np.stack([np.full(around, last), end_ring + j, end_ring + (j + 1) % around], -1)
    triangles = np.concatenate([_grid_triangles(rings, around), start, end])
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    if np.einsum("ij,ij->i", a - a.mean(0), np.cross(b - a, c - a)).sum() < 0:
        triangles = triangles[:, ::-1]
    return vertices, triangles


def superellipsoid(centre, radii, rotation=None, squareness: float = 1.0, rings: int = 14,
                   around: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A superellipsoid (squareness 1 = ellipsoid, smaller = boxier, like a vertebral body)."""
    theta = np.linspace(0, np.pi, rings + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, around, endpoint=False)
    theta, phi = np.meshgrid(theta, phi, indexing="ij")

    def power(f):
        return np.sign(f) * np.abs(f) ** squareness

    local = np.stack([power(np.sin(theta)) * power(np.cos(phi)), power(np.sin(theta)) * power(np.sin(phi)),
                      power(np.cos(theta))], -1).reshape(-1, 3) * np.asarray(radii, float)
    if rotation is not None:
        local = local @ np.asarray(rotation).T
    vertices = local + np.asarray(centre, float)
    return _capped(vertices, rings, around)


def tube(path, radii, around: int = 24, roll=None) -> tuple[np.ndarray, np.ndarray]:
    """A closed tube along `path` (P, 3) with elliptic cross-sections of semi-axes `radii` (P, 2).

    The first semi-axis lies along `roll` (a vector; default: the component of x normal to the path).
    """
    path = np.asarray(path, float)
    radii = np.broadcast_to(np.asarray(radii, float), (len(path), 2))
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    reference = np.asarray(roll if roll is not None else (1.0, 0.0, 0.0), float)
    first = reference - (tangent @ reference)[:, None] * tangent
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(tangent, first)
    angle = np.linspace(0, 2 * np.pi, around, endpoint=False)
    ring = (radii[:, None, 0, None] * np.cos(angle)[None, :, None] * first[:, None, :]
            + radii[:, None, 1, None] * np.sin(angle)[None, :, None] * second[:, None, :])
    return _capped((path[:, None, :] + ring).reshape(-1, 3), len(path), around)
