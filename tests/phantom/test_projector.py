"""The divergent-beam mesh projector against closed-form answers for a sphere and a tube."""

from __future__ import annotations

import numpy as np
import pytest

from seglib.phantom.meshes import superellipsoid, tube
from seglib.phantom.projector import Detector, project_meshes

DETECTOR = Detector(size=128, spacing=3.0, centre=(0.0, 0.0), detector_y=0.0, source_distance=1000.0)


def project(vertices, triangles, cortex_mm=0.0, detector=DETECTOR):
    n = len(triangles)
    return project_meshes(detector, vertices, triangles, np.ones(n), 1.0, np.full(len(vertices), cortex_mm),
                          np.full(n, 8.0), np.zeros(n, int), 1)


def test_path_length_through_a_sphere_is_its_chord_and_its_shadow_is_magnified():
    radius, height = 50.0, 200.0  # centre 200 mm above the detector: magnification 1000 / 800
    vertices, triangles = superellipsoid((0, -height, 0), (radius,) * 3, rings=60, around=120)
    result = project(vertices, triangles)
    path = result.path[0].reshape(128, 128)
    magnification = 1000 / (1000 - height)
    assert path.max() == pytest.approx(2 * radius, rel=0.01)
    column = int(round(63.5 + 30 * magnification / 3.0))  # a ray 30 mm from the centre (at the sphere)
    assert path[63, column] == pytest.approx(2 * np.sqrt(radius**2 - 30**2), rel=0.03)
    shadow_area = result.covered[0].sum() * 9.0
    assert shadow_area == pytest.approx(np.pi * (radius * magnification) ** 2, rel=0.02)


def test_attenuation_adds_a_cortical_shell_that_peaks_where_rays_graze_the_surface():
    path = np.column_stack([np.zeros(40), np.full(40, -150.0), np.linspace(-150, 150, 40)])
    vertices, triangles = tube(path, (30.0, 30.0), around=64)
    result = project(vertices, triangles, cortex_mm=1.0)
    row = result.attenuation[0].reshape(128, 128)[63]
    inside = result.path[0].reshape(128, 128)[63]
    shell = row - inside
    centre = 63
    assert shell[centre] == pytest.approx(2.0, rel=0.05)  # two perpendicular crossings of 1 mm
    edge = np.flatnonzero(inside > 0)[[0, -1]]
    assert shell[edge].min() > 3 * shell[centre]  # grazing rays see the cortex as a bright line


def test_an_open_mesh_never_gives_a_negative_path():
    vertices, triangles = superellipsoid((0, -200, 0), (40, 40, 40), rings=20, around=40)
    result = project(vertices, triangles[: len(triangles) // 2])  # half the surface missing
    assert result.path.min() >= 0 and result.covered.any()
