"""The command line."""

import subprocess
import sys


def test_command_line_help_does_not_load_tensorflow():
    # `--help` on any command builds the whole parser; it should answer in about a second, not four.
    code = "import sys; from seglib.cli.commands import _parser; _parser(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
