"""Notebook 01 executed as `make demo` runs it (nbclient, smoke profile): its figures are pictures,
the data generation shows a progress widget, training names its devices, and no cell shows
TensorFlow's start-up noise."""

import os
import re
from pathlib import Path

import nbformat
import pytest

from seglib.workflow.notebooks import execute_notebook

ROOT = Path(__file__).resolve().parents[2]
FIGURE_CELLS = ("bone.show_data()", "bone.plot_history()", "bone.show_validation()")
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def executed_01(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")  # data, runs and reports go here, not into the clone
    with pytest.MonkeyPatch.context() as environment:  # the kernel inherits this process's environment
        for name in [n for n in os.environ if n.startswith("SEGLIB_")] + ["TF_CPP_MIN_LOG_LEVEL"]:
            environment.delenv(name)  # a user's shell: this process set the level when it imported seglib
        environment.setenv("SEGLIB_PROFILE", "smoke")
        environment.setenv("SEGLIB_HOME", str(home))
        # the kernel imports seglib from this checkout, whatever is installed in the environment
        environment.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        notebook = nbformat.read(ROOT / "notebooks" / "01_train_left_hip.ipynb", as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell("import seglib; print(seglib.__file__)"))
        execute_notebook(notebook, ROOT / "notebooks", timeout=1200)
    return notebook


def _outputs(notebook, source: str) -> list[dict]:
    return next(cell.outputs for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip() == source)


def _stream(notebook, name: str) -> str:
    return "".join(output.text for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream" and output.name == name)


@pytest.mark.slow
def test_the_kernel_ran_this_checkout(executed_01):
    printed = executed_01.cells[-1].outputs[0].text.strip()
    assert Path(printed).resolve().is_relative_to(ROOT / "seglib")


@pytest.mark.slow
@pytest.mark.parametrize("source", FIGURE_CELLS)
def test_figures_are_pictures_in_the_executed_notebook(executed_01, source):
    shown = [output.data for output in _outputs(executed_01, source) if output.output_type == "execute_result"]
    assert len(shown) == 1 and "image/png" in shown[0], shown


@pytest.mark.slow
def test_data_generation_shows_a_progress_widget(executed_01):
    cell = next(cell for cell in executed_01.cells if "BoneTraining(" in cell.source)
    assert any(WIDGET in output.get("data", {}) for output in cell.outputs), cell.outputs


@pytest.mark.slow
def test_no_cell_shows_tensorflow_start_up_noise_and_training_names_its_devices(executed_01):
    noise = [line for line in _stream(executed_01, "stderr").splitlines()
             if re.search(r"cuda|cuInit|absl", line, re.IGNORECASE)]
    assert noise == []
    assert re.search(r"^devices: (CPU \(\d+ threads?\)|GPU:0)", _stream(executed_01, "stdout"), re.MULTILINE)


def test_running_a_notebook_prints_no_transport_warning_but_keeps_the_notebooks_own(tmp_path, capfd):
    """`make demo` once printed ipykernel's "running over TCP without encryption" per notebook (issue #29)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import warnings; warnings.warn('check the spacing'); print(6 * 7)")])
    execute_notebook(notebook, tmp_path, timeout=120)
    outputs = {output.name: output.text for output in notebook.cells[0].outputs}
    assert outputs["stdout"] == "42\n" and "check the spacing" in outputs["stderr"]
    assert "without encryption" not in capfd.readouterr().err
    assert not list(tmp_path.iterdir())  # no socket files left behind in the working folder
