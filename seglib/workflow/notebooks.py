"""Running the notebooks in sequence (`python -m seglib demo`): executed copies go to reports/,
the committed notebooks are left untouched."""

from __future__ import annotations

import os
import time
from pathlib import Path

from seglib.workflow.environment import project_root

NOTEBOOKS = ("01_train_left_hip.ipynb", "02_train_right_hip.ipynb", "03_fuse_and_report.ipynb")


def run_notebooks(profile: str = "demo", data: str | None = None, timeout: int = 3600,
                  only=("01", "02", "03")) -> list[Path]:
    """Execute the notebooks in order with nbclient (those whose number is in `only`); executed
    copies go to reports/<profile>/notebooks/, the committed notebooks are left untouched."""
    import nbformat
    from nbclient import NotebookClient

    root = project_root()
    out_dir = root / "reports" / profile / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["SEGLIB_PROFILE"] = profile  # the kernel inherits the environment
    data = data or os.environ.get("SEGLIB_DATA")
    if data:  # relative to where the user is, not to the kernels' notebooks/ folder
        os.environ["SEGLIB_DATA"] = str(Path(data).resolve())
    written = []
    for name in (n for n in NOTEBOOKS if n[:2] in only):
        started = time.perf_counter()
        notebook = nbformat.read(root / "notebooks" / name, as_version=4)
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(root / "notebooks")}}).execute()
        path = out_dir / name
        nbformat.write(notebook, path)
        written.append(path)
        print(f"{name}: {time.perf_counter() - started:.0f} s -> {path}", flush=True)
    return written
