"""The markdown table writer every report uses."""

import pandas as pd
import pytest

from seglib.reporting.tables import markdown_table


def test_a_table_renders_as_github_markdown_with_numbers_right_aligned_on_request():
    frame = pd.DataFrame({"method": ["U-Net", "otsu"], "dice": [0.91234, 0.5], "n": [12, 12]})
    assert markdown_table(frame, align="lrr").splitlines() == [
        "| method | dice | n |", "|---|---:|---:|", "| U-Net | 0.912 | 12 |", "| otsu | 0.500 | 12 |"]
    assert markdown_table(frame).splitlines()[1] == "|---|---|---|"


def test_an_alignment_that_does_not_fit_the_columns_is_refused():
    with pytest.raises(ValueError, match="one of l/r per column"):
        markdown_table(pd.DataFrame({"a": [1], "b": [2]}), align="l")
    with pytest.raises(ValueError, match="one of l/r per column"):
        markdown_table(pd.DataFrame({"a": [1]}), align="c")
