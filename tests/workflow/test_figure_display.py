"""Figures returned to a notebook show as pictures, not as the text `<Figure size ... with 8 Axes>`,
in a kernel where pyplot was never imported (as in notebooks 01 and 02)."""

import io

from conftest import write_square_dataset
from IPython.core.formatters import DisplayFormatter
from PIL import Image

from seglib.reporting.figures import show_samples


def test_a_returned_figure_displays_as_a_png_at_its_own_resolution(tmp_path):
    figure = show_samples(write_square_dataset(tmp_path / "squares"), ["left_thing", "right_thing"], n=4)
    # A fresh formatter knows no matplotlib type: the state of a kernel before (or without) pyplot.
    shown, _ = DisplayFormatter().format(figure)
    assert "image/png" in shown
    picture = Image.open(io.BytesIO(shown["image/png"]))
    width, height = figure.get_size_inches() * figure.dpi
    assert picture.format == "PNG"
    # at the figure's dpi, cropped to what is drawn (bbox_inches="tight"): not a thumbnail
    assert 0.8 * width < picture.width < 1.2 * width and 0.8 * height < picture.height < 1.5 * height
    assert len(set(picture.convert("L").getdata())) > 2  # something is drawn, not a blank canvas
