"""Running the notebooks in sequence (`python -m seglib demo`): executed copies go to reports/,
the committed notebooks are left untouched."""

from __future__ import annotations

import os
import time
from pathlib import Path

from seglib.data.io import resolved
from seglib.workflow.environment import project_root

NOTEBOOKS = ("01_train_left_hip.ipynb", "02_train_right_hip.ipynb", "03_fuse_and_report.ipynb")


def run_notebooks(profile: str = "demo", data: str | None = None, timeout: int = 3600,
                  only=("01", "02", "03")) -> list[Path]:
    """Execute the notebooks in order with nbclient (those whose number is in `only`); executed
    copies go to reports/<profile>/notebooks/, the committed notebooks are left untouched."""
    import nbformat

    root = project_root()
    out_dir = root / "reports" / profile / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["SEGLIB_PROFILE"] = profile  # the kernel inherits the environment
    data = data or os.environ.get("SEGLIB_DATA")
    if data:  # relative to where the user is, not to the kernels' notebooks/ folder
        os.environ["SEGLIB_DATA"] = str(resolved(data))
    written = []
    for name in (n for n in NOTEBOOKS if n[:2] in only):
        started = time.perf_counter()
        notebook = execute_notebook(nbformat.read(root / "notebooks" / name, as_version=4), root / "notebooks", timeout)
        path = out_dir / name
        nbformat.write(notebook, path)
        written.append(path)
        print(f"{name}: {time.perf_counter() - started:.0f} s -> {path}", flush=True)
    return written


def execute_notebook(notebook, folder: Path, timeout: int = 3600):
    """Runs `notebook` (nbformat, changed in place and returned) in a python3 kernel working in
    `folder`. The kernel talks over local IPC sockets, not TCP: over TCP ipykernel warns at every start
    that the traffic "is susceptible to eavesdropping", which is not actionable for a kernel on this
    machine; the notebook's own warnings still show in its outputs."""
    import tempfile
    import uuid

    from nbclient import NotebookClient
    from traitlets.config import Config

    # An absolute socket path: jupyter_client's default ("kernel-ipc") is relative, and the kernel runs in `folder`.
    sockets = str(Path(tempfile.gettempdir()) / f"seglib-kernel-{uuid.uuid4().hex[:12]}")
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   config=Config({"KernelManager": {"transport": "ipc", "ip": sockets}}),
                   resources={"metadata": {"path": str(folder)}}).execute()
    return notebook
