"""Whether a film can be segmented at all: the one check that `segment`, `predict`, `fuse` and a
Predictor apply before a model sees the film (and the rule a film-quality flag reuses).

A film that fails it is not given a label map a reader could trust: its masks are empty, and the
reason is said once, on a warning line naming the film (and in segment's areas.csv). The limits are
far from any real radiograph, so a real one never fails them:

- MIN_SIDE: a thumbnail of a radiograph is still hundreds of pixels a side; below 32 pixels the
  bones are a few pixels each, and a model sees an upsampled blur.
- MAX_ASPECT: the longest films (stitched long-leg and full-spine films, 14 x 51 inch cassettes)
  are about 1 : 4; a strip beyond 1 : 6 is a crop or a scan error, and squeezing it into the model's
  square input would distort every bone.
- NEAR_CONSTANT: a blank film, or a blank one with a label burnt into a corner, shows nothing to
  segment; yet per-image standardisation would stretch its noise into "anatomy". Measured on the
  middle 98% of the pixel values, so a few stray pixels do not count as contrast; the limit is two
  8-bit grey levels, as a fraction of the range the film's bits hold (stored_range: a 10-bit film in a
  16-bit file is measured against its 1023 levels, where its soft tissue and bone span hundreds).
"""

from __future__ import annotations

import sys

import numpy as np

from seglib.data.io import grey_film

MIN_SIDE = 32
MAX_ASPECT = 6.0
NEAR_CONSTANT = 2 / 255  # of the pixel type's full range
_SAMPLED_PIXELS = 2**20  # the value spread is measured on at most about this many pixels of a large film


def degenerate_reason(image) -> str | None:
    """Why the film cannot be segmented ("blank ...", "too small ...", "a strip ..."), or None when
    it can. `image`: a film as seglib.data.io.grey_film accepts it (what read_image returns)."""
    image = grey_film(image)
    rows, columns = image.shape
    if min(rows, columns) < MIN_SIDE:
        return f"too small to segment ({rows} x {columns} pixels; at least {MIN_SIDE} a side)"
    if max(rows, columns) > MAX_ASPECT * min(rows, columns):
        return f"a strip, not a film ({rows} x {columns} pixels; sides beyond 1 : {MAX_ASPECT:g})"
    if image.min() == image.max():
        return "blank (every pixel has the same value)"
    step = max(1, int(np.ceil(np.sqrt(image.size / _SAMPLED_PIXELS))))  # a regular grid: no copy of the film
    low, high = np.percentile(image[::step, ::step], [1, 99])
    full = stored_range(image)
    if high - low < NEAR_CONSTANT * full:
        return f"nearly blank (98% of its pixels within {high - low:g} of {full} grey levels)"
    return None


def stored_range(image: np.ndarray) -> int:
    """The grey levels the film's bits can hold: a 16-bit file often stores a 10- or 12-bit film, whose
    contrast is measured against 1023 or 4095 levels, not 65535 (the highest value's bit length; 8 bits
    at least)."""
    return 2 ** max(8, int(image.max()).bit_length()) - 1


def warn_if_degenerate(image, name) -> str | None:
    """degenerate_reason, said on one warning line on stderr naming the film."""
    reason = degenerate_reason(image)
    if reason is not None:
        print(f"warning: {name}: {reason}; not segmented, its masks are empty", file=sys.stderr)
    return reason


# A row or column of the film most of whose pixels (FLAT_SHARE: the rest may be burnt-in text, markers or the
# other blade's corner) hold one grey level, within FLAT_LEVELS of the film's 8-bit-equivalent range, shows no
# anatomy: it lies behind the collimator blades (or an electronic shutter, or padding). A bone's texture and the
# detector's noise never are that flat. A band may be broken by lines of text up to TEXT_GAP of the film's side.
FLAT_SHARE = 0.97
FLAT_LEVELS = 1 / 255
TEXT_GAP = 0.05
_SAMPLES_PER_LINE = 1024


def unexposed(image: np.ndarray) -> np.ndarray | None:
    """Where the film shows nothing: the bands of flat rows and columns at its edges (boolean, the film's
    shape), or None where there are none. A network sees a bone run on beyond a tight field and draws it there;
    the truth, and any reader, stops at the field's edge, so masks are cut there too."""
    image = grey_film(image)
    tolerance = FLAT_LEVELS * stored_range(image)
    outside = np.zeros(image.shape, bool)
    for axis in (0, 1):
        flat = _flat_lines(image if axis == 0 else image.T, tolerance)
        band = outside if axis == 0 else outside.T
        band[:_band_depth(flat)] = True
        band[len(flat) - _band_depth(flat[::-1]):] = True
    return outside if outside.any() else None


def _flat_lines(lines: np.ndarray, tolerance: float) -> np.ndarray:
    """Per row of `lines`: whether FLAT_SHARE of its pixels lie within `tolerance` of its median (measured on
    about _SAMPLES_PER_LINE of them: a share needs no more, and a 3000-pixel film then costs no film-sized copy)."""
    step = max(1, lines.shape[1] // _SAMPLES_PER_LINE)
    levels = lines[:, ::step].astype(np.float32)
    middle = np.median(levels, axis=1, keepdims=True)
    return (np.abs(levels - middle) <= tolerance).mean(axis=1) >= FLAT_SHARE


def _band_depth(flat: np.ndarray) -> int:
    """How many lines from the edge lie in the band: up to its last flat line, across gaps of text."""
    gap = max(1, int(TEXT_GAP * len(flat)))
    depth, since = 0, 0
    for index, line in enumerate(flat):
        if line:
            depth, since = index + 1, 0
        else:
            since += 1
            if since > gap or depth == 0:
                break
    return depth
