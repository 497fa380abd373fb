"""`python -m seglib --help` stays fast: building the parser imports none of the heavy libraries,
and the choice lists it offers (seglib.config) are exactly what the implementations accept."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seglib import config

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("skimage", "scipy", "pandas", "matplotlib", "tensorflow", "keras")
# Runs --help in a fresh interpreter (argparse exits after printing) and reports what got imported.
PROBE = """
import json, runpy, sys
sys.argv = ["seglib", *json.loads(sys.argv[1])]
try:
    runpy.run_module("seglib", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("arguments", [["--help"], ["fuse", "--help"], ["import", "--help"], ["segment", "--help"],
                                       ["baseline", "--help"], ["ablation", "--help"], ["bench", "--help"]])
def test_help_imports_no_heavy_library(arguments):
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(arguments)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=True)
    assert "usage: python -m seglib" in done.stdout
    imported = set(json.loads(done.stdout.splitlines()[-1]))
    assert "seglib" in imported and not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_choice_lists_match_what_the_implementations_accept():
    from seglib.data.adapters import FORMATS, SIDE_MEANINGS
    from seglib.experiments.ablation import CONFIGURATIONS
    from seglib.inference.baselines import BASELINES

    assert set(config.IMPORT_FORMATS) == set(FORMATS)
    assert config.SIDE_CONVENTIONS == tuple(SIDE_MEANINGS)
    assert set(config.BASELINE_METHODS) == set(BASELINES)
    assert config.ABLATION_CONFIGURATIONS == tuple(CONFIGURATIONS)


def test_every_offered_fusion_strategy_and_segment_format_works(tmp_path):
    import numpy as np

    from seglib.inference.fusion import fuse
    from seglib.inference.segment_formats import open_exports

    probabilities = {"left_hip": np.full((4, 4), 0.9, np.float32), "right_hip": np.full((4, 4), 0.2, np.float32)}
    for strategy in config.FUSION_STRATEGIES:
        priority = ["left_hip", "right_hip"] if strategy == "priority" else None
        fused = fuse(probabilities, strategy=strategy, priority=priority)
        assert fused.masks["left_hip"].all(), strategy
    assert [type(export).__name__ for export in open_exports(["png", "nifti"], [], {}, {})] == ["NiftiExport"]
    with pytest.raises(ValueError, match=r"unknown output format\(s\) \['svg'\]; choose from png, nifti, dicom-seg"):
        open_exports(["svg"], [], {}, {})
