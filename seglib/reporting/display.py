"""Figures that show themselves in a notebook without pyplot.

seglib builds its figures with matplotlib.figure.Figure directly, not through pyplot, so that they
work headless and leave no global state. But a plain Figure has no rich display of its own: only
pyplot's inline backend registers one, so in a kernel where pyplot was never imported a returned
figure shows as the text `<Figure size 1200x600 with 8 Axes>`. InlineFigure adds `_repr_png_`, the
method IPython's display formatter looks up on any object, so the picture shows in Jupyter,
nbclient, Kaggle and Colab whatever backend is (or is not) loaded.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure


class InlineFigure(Figure):
    """A matplotlib Figure that IPython displays as a PNG image."""

    def _repr_png_(self) -> bytes | None:
        if not self.axes:  # nothing drawn: keep the text repr, as the inline backend does
            return None
        buffer = io.BytesIO()
        # the figure's own dpi and a tight box, like matplotlib's inline backend
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
