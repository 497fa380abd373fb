"""Fixtures shared by the folder-inference tests."""

import pytest
from test_export import write_tiny_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A left_hip and a right_hip run of tiny untrained models (mirror partners, so flip TTA works)."""
    root = tmp_path_factory.mktemp("runs")
    return [write_tiny_run(root / "left", "left_hip", seed=0), write_tiny_run(root / "right", "right_hip", seed=1)]
