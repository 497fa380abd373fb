"""The public API: `from seglib import ...` without knowing file names, and without TensorFlow until used."""

import subprocess
import sys

import pytest

import seglib


def test_import_seglib_loads_no_tensorflow_until_a_name_is_used():
    code = ("import sys, seglib; before = 'tensorflow' in sys.modules; seglib.Predictor; "
            "print(before, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


def test_public_names_are_the_objects_of_their_subpackages():
    from seglib import Predictor, build_report, evaluate_folder, fuse, train
    from seglib.evaluation.folder import evaluate_folder as defined_evaluate_folder
    from seglib.inference import fuse as package_fuse

    assert evaluate_folder is defined_evaluate_folder and fuse is package_fuse
    assert all(callable(obj) for obj in (Predictor, build_report, train))
    assert {"train", "Predictor", "fuse", "evaluate_folder", "build_report"} <= set(dir(seglib))


def test_every_listed_name_of_every_subpackage_resolves():
    for package in ("seglib", "seglib.data", "seglib.phantom", "seglib.symmetry", "seglib.networks", "seglib.losses",
                    "seglib.training", "seglib.inference", "seglib.evaluation", "seglib.reporting",
                    "seglib.experiments", "seglib.workflow"):
        module = __import__(package, fromlist=["_"])
        for name in dir(module):
            if not name.startswith("_"):
                assert getattr(module, name) is not None, f"{package}.{name}"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        seglib.nonexistent  # noqa: B018
