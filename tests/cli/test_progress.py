"""Long commands draw a progress bar (count, rate, time left) on a terminal; nothing with --quiet,
and nothing extra when stderr goes to a log file."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _phantom_command(out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "seglib", "phantom", "--out", str(out), "--n", "8", "--film-size", "32", *options]


def _environment() -> dict:
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _run_with_stderr_on_a_terminal(command: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and what the terminal (120 x 24) on stderr received."""
    terminal, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=child_end, env=_environment())
    os.close(child_end)
    received = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        received += chunk
    os.close(terminal)
    stdout = process.stdout.read().decode()
    return process.wait(timeout=300), stdout, received.decode(errors="replace")


def test_phantom_draws_count_and_time_left_on_a_terminal(tmp_path):
    code, stdout, terminal = _run_with_stderr_on_a_terminal(_phantom_command(tmp_path / "phantoms"))
    assert code == 0, terminal
    assert stdout.strip() == str(tmp_path / "phantoms")  # the result stays alone on stdout
    last = terminal.replace("\r\n", "\n").split("\r")[-1]
    assert re.search(r"phantom: 100%.* 8/8 \[\d\d:\d\d<\d\d:\d\d", last), terminal


def test_quiet_draws_nothing_on_a_terminal(tmp_path):
    code, _, terminal = _run_with_stderr_on_a_terminal(_phantom_command(tmp_path / "phantoms", "--quiet"))
    assert code == 0, terminal
    assert "phantom:" not in terminal and "8/8" not in terminal
    assert len(list((tmp_path / "phantoms" / "images").iterdir())) == 8


def test_a_log_file_gets_no_progress_bar(tmp_path):
    with open(tmp_path / "log.txt", "w") as log:
        subprocess.run(_phantom_command(tmp_path / "phantoms"), stdout=log, stderr=log, env=_environment(),
                       check=True, timeout=300)
    assert (tmp_path / "log.txt").read_text() == f"{tmp_path / 'phantoms'}\n"
