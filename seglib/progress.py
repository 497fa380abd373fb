"""Progress of long work (phantom generation, predict, fuse, segment, import, evaluate, bench,
ablation): counts, rate and time left, with tqdm. tqdm.auto draws a widget in Jupyter (Kaggle,
Colab) and a text bar on stderr in a terminal.

Nothing is drawn when stderr is not a terminal (a log file, a pipe, CI) outside a notebook, nor
inside `shown_progress(False)` (the commands' --quiet). Training keeps Keras's own progress.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from contextlib import contextmanager

_wanted = True  # False inside shown_progress(False)


@contextmanager
def shown_progress(wanted: bool = True):
    """Within the block, progress is drawn (where it can be) or not at all (`wanted=False`)."""
    global _wanted
    before, _wanted = _wanted, wanted
    try:
        yield
    finally:
        _wanted = before


def progress(iterable: Iterable, description: str, total: int | None = None, unit: str = "image"):
    """`iterable`, drawing its progress: "description: 12/200 image [00:03<00:47, 4.0 image/s]".
    `total` defaults to len(iterable) where it has one; without it the bar counts without an end."""
    return _tqdm()(iterable, desc=description, total=total, unit=unit, disable=not progress_drawn(),
                    leave=not _open_bars(), dynamic_ncols=True)


def progress_bar(total: int, description: str, unit: str):
    """A bar advanced by hand (`bar.update()`), for steps that are not one loop; use it with `with`."""
    return progress(None, description, total=total, unit=unit)


def progress_drawn() -> bool:
    """Whether a bar would be drawn here: wanted, and in a notebook or a terminal."""
    return _wanted and (_in_notebook() or _is_terminal(sys.stderr))


def _in_notebook() -> bool:
    notebook = sys.modules.get("tqdm.notebook")  # imported by tqdm.auto only in a notebook kernel
    return notebook is not None and issubclass(_tqdm(), notebook.tqdm_notebook)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _open_bars() -> bool:
    """Whether another bar is drawn now: a bar inside another goes away when done, only the outer one stays."""
    return bool(getattr(_tqdm(), "_instances", ()))


def _tqdm():
    """tqdm.auto's class: the notebook widget in a Jupyter kernel, else the text bar. Imported on
    first use, so `python -m seglib --help` stays quick."""
    from tqdm.auto import tqdm

    return tqdm
