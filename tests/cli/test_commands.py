"""The command line."""

import subprocess
import sys

import pytest

from seglib.cli.commands import _parser
from seglib.config import RunConfig
from seglib.networks.unet import ARCHITECTURES, build_model


def test_command_line_help_does_not_load_tensorflow():
    # `--help` on any command builds the whole parser; it should answer in about a second, not four.
    code = "import sys; from seglib.cli.commands import _parser; _parser(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


TRAIN = ["train", "--data", "d", "--structure", "left_hip", "--out", "r"]


def test_the_command_line_offers_exactly_the_architectures_build_model_knows(capsys):
    for architecture in ARCHITECTURES:
        assert _parser().parse_args([*TRAIN, "--architecture", architecture]).architecture == architecture
        config = RunConfig(architecture=architecture, image_size=32, depth=2, base_filters=4)
        assert build_model(config).name.startswith(architecture)
    with pytest.raises(SystemExit):
        _parser().parse_args([*TRAIN, "--architecture", "segformer"])
    assert "invalid choice: 'segformer'" in capsys.readouterr().err
