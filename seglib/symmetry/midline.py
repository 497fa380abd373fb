"""The left-right symmetry axis (midline) of a frontal radiograph, and a side-aware input channel.

Conventions (the same as seglib.phantom.render.PelvisSample): pixel centres sit at integer coordinates;
`Midline.x` is the column where the axis crosses the image's vertical centre row, row
(H - 1) / 2; `Midline.tilt_deg` is the axis's angle from vertical, positive when its upper end
leans towards the image's right (the anatomy turned clockwise on screen). So the axis passes
through column x + (centre_row - row) * tan(tilt) at each row.

Method: a mirror image of an image that is symmetric about a tilted axis is that image turned
and shifted. For each candidate tilt the (downsampled, edge-enhanced) image is resampled in a frame
whose vertical is the candidate axis direction; there the axis is vertical, and the horizontal
shift d that best matches the image to its left-right flip, by normalised cross-correlation over
the overlapping columns, puts the axis at column (W - 1 + d) / 2. The tilt with the best match
wins. Shift and tilt are refined to sub-pixel / sub-step precision by parabolas through the
correlation peaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

WORKING_SIZE = 128  # pixels along the longer side during the search: enough for bone edges, fast
_COARSE_TILT_STEP_DEG = 2.0
_FINE_TILT_STEP_DEG = 0.5
_MAX_SHIFT_FRACTION = 0.5  # of the width: larger shifts leave too little overlap to compare
_EDGE_SIGMA = 1.0  # working pixels


@dataclass(frozen=True)
class Midline:
    """x: column (pixels) of the axis on the centre row; tilt_deg: from vertical, positive = upper
    end towards the image's right; correlation: mirror match at the estimate (normalised
    cross-correlation, 1 = perfectly symmetric; low values flag images that are not frontal or
    not symmetric)."""

    x: float
    tilt_deg: float
    correlation: float = float("nan")


def estimate_midline(image: np.ndarray, max_tilt_deg: float = 10.0, working_size: int = WORKING_SIZE) -> Midline:
    """Estimate the left-right symmetry axis of a 2D grey image (H, W) or (H, W, 1).

    Tilts from -max_tilt_deg to +max_tilt_deg are searched (0 searches only a vertical axis);
    the axis may lie anywhere in the central half of the width (columns W/4 to 3W/4).
    Check `correlation`: an image without a clear mirror symmetry still gets the best (poor) match."""
    grey = _as_grey(image)
    if not max_tilt_deg >= 0:
        raise ValueError(f"max_tilt_deg must be a non-negative number of degrees, got {max_tilt_deg!r}")
    factor = max(1, int(round(max(grey.shape) / working_size)))
    edges = _edge_strength(_block_mean(grey, factor))
    tilt, d_perp, correlation = _best_axis(edges, max_tilt_deg)
    centre_x = (edges.shape[1] - 1) / 2
    # d_perp is the axis's distance from the centre along the axis normal; on the centre row that
    # is d_perp / cos(tilt) columns.
    x_working = centre_x + d_perp / np.cos(np.deg2rad(tilt))
    return Midline(x=float(_to_full_resolution(x_working, factor)), tilt_deg=float(tilt),
                   correlation=float(correlation))


def side_channel(shape: tuple[int, int], midline: Midline) -> np.ndarray:
    """float32 (H, W): signed horizontal distance of each pixel from the (tilted) midline on its
    row, times 2 / W and clipped to [-1, 1]. Positive on the image's right of the axis, i.e. the
    PATIENT's left in a standard frontal view; 0 on the axis; +-1 at the image edges when the
    axis is central. A flipped image's side channel is minus the flipped original one."""
    height, width = shape[:2]
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]
    axis_cols = midline.x + ((height - 1) / 2 - rows) * np.tan(np.deg2rad(midline.tilt_deg))
    return np.clip((cols - axis_cols) * 2.0 / width, -1.0, 1.0).astype(np.float32)


def _as_grey(image) -> np.ndarray:
    grey = np.asarray(image)
    if grey.ndim == 3 and grey.shape[-1] == 1:
        grey = grey[..., 0]
    if grey.ndim != 2:
        raise ValueError(f"midline estimation needs a 2D grey image (H, W) or (H, W, 1), got shape {grey.shape}")
    if min(grey.shape) < 8:
        raise ValueError(f"image of shape {grey.shape} is too small for a midline estimate (at least 8 x 8)")
    grey = grey.astype(np.float64)
    if not np.all(np.isfinite(grey)):
        raise ValueError("image contains NaN or infinite values")
    return grey


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Downsample by averaging factor x factor blocks (trailing rows/columns that do not fill a
    block are dropped; they lie at the far edges, where they move no pixel centre)."""
    if factor == 1:
        return image
    rows, cols = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def _to_full_resolution(x_working: float, factor: int) -> float:
    # working pixel j averages full-resolution pixels factor*j ... factor*j + factor - 1
    return factor * x_working + (factor - 1) / 2


def _edge_strength(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude: mirror-invariant, and it weights bone outlines over the smooth soft-tissue
    shading and exposure gradients that would otherwise dominate the correlation."""
    return ndimage.gaussian_gradient_magnitude(image, _EDGE_SIGMA)


def _best_axis(edges: np.ndarray, max_tilt_deg: float) -> tuple[float, float, float]:
    """(tilt_deg, d_perp, correlation) of the best mirror match: coarse tilt grid, then a fine grid
    round the best coarse tilt, then a parabola through the best fine tilt and its neighbours."""
    coarse = _tilt_grid(-max_tilt_deg, max_tilt_deg, _COARSE_TILT_STEP_DEG)
    scores = {tilt: _mirror_match(edges, tilt) for tilt in coarse}
    best = max(scores, key=lambda tilt: scores[tilt][1])
    step = coarse[1] - coarse[0] if len(coarse) > 1 else 0.0
    fine = _tilt_grid(max(best - step, -max_tilt_deg), min(best + step, max_tilt_deg), _FINE_TILT_STEP_DEG)
    scores.update({tilt: _mirror_match(edges, tilt) for tilt in fine if tilt not in scores})
    tilts = sorted(scores)
    i = max(range(len(tilts)), key=lambda k: scores[tilts[k]][1])
    if 0 < i < len(tilts) - 1 and np.isclose(tilts[i + 1] - tilts[i], tilts[i] - tilts[i - 1]):
        offset = _parabola_peak(*(scores[tilts[k]][1] for k in (i - 1, i, i + 1)))
        tilt = tilts[i] + offset * (tilts[i + 1] - tilts[i])
        d_perp, correlation = _mirror_match(edges, tilt)
        return tilt, d_perp, correlation
    return (tilts[i], *scores[tilts[i]])


def _tilt_grid(low: float, high: float, step: float) -> list[float]:
    if high - low < step:
        return sorted({low, high, (low + high) / 2})
    n = int(np.ceil((high - low) / step)) + 1
    return [float(t) for t in np.linspace(low, high, n)]


def _mirror_match(edges: np.ndarray, tilt_deg: float) -> tuple[float, float]:
    """(d_perp, correlation) for a candidate tilt: the best axis position as a signed distance
    from the image centre along the axis normal (working pixels), and its correlation."""
    upright = _resample_along_axis(edges, tilt_deg)
    width = upright.shape[1]
    correlation = _mirror_correlation(upright)
    max_shift = int(_MAX_SHIFT_FRACTION * width)
    shifts = np.arange(-max_shift, max_shift + 1)
    values = correlation[shifts]  # negative shifts wrap round to the end, as the FFT lays them out
    k = int(np.argmax(values))
    sub_pixel = _parabola_peak(*values[k - 1:k + 2]) if 0 < k < len(values) - 1 else 0.0
    shift = shifts[k] + sub_pixel
    axis_col = (width - 1 + shift) / 2
    return axis_col - (width - 1) / 2, float(values[k])


def _resample_along_axis(image: np.ndarray, tilt_deg: float) -> np.ndarray:
    """The image in a frame turned about its centre so that an axis at tilt_deg becomes vertical
    (bilinear; outside the image reads 0, no edge)."""
    if tilt_deg == 0:
        return image
    c, s = np.cos(np.deg2rad(tilt_deg)), np.sin(np.deg2rad(tilt_deg))
    # output (row', col') reads input (row, col) = centre + M @ ((row', col') - centre): the
    # output's up direction is the axis direction (sin t, -cos t) in (col, row) screen coordinates.
    matrix = np.array([[c, s], [-s, c]])
    centre = (np.array(image.shape, float) - 1) / 2
    return ndimage.affine_transform(image, matrix, offset=centre - matrix @ centre, order=1, cval=0.0)


def _mirror_correlation(image: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation between the image and its left-right mirror for every
    horizontal shift d (index d mod 2W), each computed over the columns where the two overlap.

    mirror(c) = image(W - 1 - c); shifting the mirror by d compares image(c) with
    image(W - 1 - c + d), which matches when the image is symmetric about column (W - 1 + d) / 2.
    The products for all shifts come from one row-wise FFT; the overlap sums from cumulative
    column sums, so each shift is normalised by its own overlap (no bias towards d = 0)."""
    height, width = image.shape
    mirror = image[:, ::-1]
    n = 2 * width
    spectrum = np.fft.rfft(image, n, axis=1) * np.conj(np.fft.rfft(mirror, n, axis=1))
    products = np.fft.irfft(spectrum.sum(axis=0), n)  # products[d] = sum image(c) * mirror(c - d)
    shifts = np.arange(n)
    shifts[shifts >= width] -= n
    image_cols = _overlap_sums(image, shifts, image_side=True)
    mirror_cols = _overlap_sums(mirror, shifts, image_side=False)
    count = height * np.maximum(width - np.abs(shifts), 1)
    covariance = products - image_cols[0] * mirror_cols[0] / count
    variance = (image_cols[1] - image_cols[0] ** 2 / count) * (mirror_cols[1] - mirror_cols[0] ** 2 / count)
    return np.where(variance > 0, covariance / np.sqrt(np.maximum(variance, 1e-300)), -1.0)


def _overlap_sums(image: np.ndarray, shifts: np.ndarray, image_side: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares over the overlapping columns for each shift: for shift d the image
    contributes columns [max(0, d), W + min(0, d)), the shifted mirror columns
    [max(0, -d), W - max(0, d))."""
    width = image.shape[1]
    cumulative = [np.concatenate([[0.0], np.cumsum(image.sum(axis=0))]),
                  np.concatenate([[0.0], np.cumsum((image ** 2).sum(axis=0))])]
    if image_side:
        start, stop = np.maximum(shifts, 0), width + np.minimum(shifts, 0)
    else:
        start, stop = np.maximum(-shifts, 0), width - np.maximum(shifts, 0)
    stop = np.maximum(stop, start)
    return tuple(c[stop] - c[start] for c in cumulative)


def _parabola_peak(left: float, centre: float, right: float) -> float:
    """Offset (in steps, within [-0.5, 0.5]) of the vertex of the parabola through three samples."""
    curvature = left - 2 * centre + right
    if curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
