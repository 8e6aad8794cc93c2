"""Finding the one digit in a picture (a photo or a scan: uneven lighting, sensor noise, specks)
for ``fastcnn predict``: its ink as white on black, background exactly 0, cut to its bounding
box. MNIST's normalisation of that box (20x20, centre of mass) is _digits.prepare_digit's.

The steps, on the picture box-averaged by an integer factor to at most WORK_PIXELS pixels:

1. lighting: a quadratic surface fitted to the picture by least squares, the ink left out by
   trimming large residuals (a flat page, a gradient and a vignette are each such a surface);
2. polarity: the ink is the heavy one-sided tail of the residuals, darker than the surface (ink
   on paper) or lighter (MNIST's white on black);
3. contrast: ink on paper as (surface - picture) / surface (lighting multiplies what paper reflects;
   the surface floored at half its median, so a dark corner's noise is not magnified), a light
   digit as picture - surface;
4. threshold: Otsu's on the contrast smoothed by a 3x3 binomial filter, never below 4 noise
   sigmas (sigma from the median absolute deviation); the digit is the 8-connected components
   of the smoothed contrast above 3 sigmas (hysteresis: faint anti-aliased edges stay) that
   hold at least KEEP_FRACTION of the largest one's pixels above Otsu's threshold. Specks and
   noise hold fewer and are dropped, so the bounding box is the digit's.

Hand-written numpy rather than scikit-image: each step is a few lines here (Otsu's threshold
is a histogram and two cumulative sums; labelling is a union-find over row runs, a Python loop
over runs, not pixels), while scikit-image would add scipy and its own dependencies (~100 MB)
to a package whose runtime needs only numpy. Left out: several digits, perspective, a page
edge or shadow large enough to pass for ink (one digit on a plain background is assumed).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["KEEP_FRACTION", "WORK_PIXELS", "digit_ink"]

# Enough resolution for the 20x20 box MNIST scales a digit into, even for a digit a tenth of
# the picture's size, and a bounded cost (the labelling's runs, the least-squares samples).
WORK_PIXELS = 2**18
# A component is part of the digit when it has this share of the largest one's ink: pieces of
# a broken stroke do (a detached bar holds about a tenth), dust and sensor noise do not.
KEEP_FRACTION = 0.05
_NOISE_FLOOR = 0.01  # sigma of a clean (synthetic, 8-bit) picture: ~2.5 grey levels
_FIT_SAMPLES = 2**14  # pixels the lighting surface is fitted to (a regular subgrid)


def digit_ink(x: np.ndarray, where: str) -> np.ndarray:
    """The digit in ``x`` (2-D float64 in [0, 1]) as a new float64 array cut to its bounding
    box: ink in (0, 1] (its typical level 1), everything outside the digit 0. Raises
    ValueError naming ``where`` when there is no digit (a uniform or noise-only picture)."""
    x = _reduce(x)
    surface = _lighting(x)
    residual = x - surface
    sigma = _spread(residual)
    light = np.clip(residual - 3 * sigma, 0, None).sum()
    dark = np.clip(-residual - 3 * sigma, 0, None).sum()
    if max(light, dark) == 0:
        raise ValueError(f"{where}: no digit found (a uniform or noise-only image)")
    if dark > light:  # ink on paper: the share of light the ink takes away
        # ... relative to at least half the page's typical brightness: in a dark corner the
        # share would mostly be the noise's.
        contrast = -residual / np.maximum(surface, 0.5 * float(np.median(surface)))
    else:
        contrast = residual
    smooth = _smooth(contrast)
    noise = _spread(smooth)
    strong = smooth > max(_otsu(smooth), 4 * noise)
    if not strong.any():
        raise ValueError(f"{where}: no digit found (nothing stands out from the background)")
    digit = _keep_digit(smooth > 3 * noise, strong)
    ink = float(np.percentile(contrast[strong & digit], 95))
    out = np.where(digit, np.clip(contrast / max(ink, _NOISE_FLOOR), 0.0, 1.0), 0.0)
    rows = np.flatnonzero((out > 0.1).any(axis=1))
    cols = np.flatnonzero((out > 0.1).any(axis=0))
    if len(rows) == 0:
        raise ValueError(f"{where}: no digit found (nothing stands out from the background)")
    return out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _reduce(x: np.ndarray) -> np.ndarray:
    """``x`` box-averaged by the smallest integer factor that fits WORK_PIXELS (the last rows
    and columns that do not fill a box are dropped)."""
    h, w = x.shape
    k = 1
    while (h // k) * (w // k) > WORK_PIXELS:
        k += 1
    if k == 1:
        return x
    h, w = h // k, w // k
    return x[: h * k, : w * k].reshape(h, k, w, k).mean(axis=(1, 3))


def _spread(values: np.ndarray) -> float:
    """A noise sigma robust to the ink: 1.4826 x the median absolute deviation, floored."""
    v = values.ravel()
    return max(1.4826 * float(np.median(np.abs(v - np.median(v)))), _NOISE_FLOOR)


def _lighting(x: np.ndarray) -> np.ndarray:
    """The background's brightness at every pixel: a quadratic in the pixel's position,
    refitted to the pixels within 2.5 sigmas of the last fit (starting from the median)."""
    h, w = x.shape
    v, u = np.linspace(-1.0, 1.0, h), np.linspace(-1.0, 1.0, w)
    step = max(1, math.isqrt(x.size // _FIT_SAMPLES))
    vs, us = np.meshgrid(v[::step], u[::step], indexing="ij")
    basis = np.stack([np.ones_like(us), us, vs, us * us, us * vs, vs * vs], axis=-1)
    basis = basis.reshape(-1, 6)
    sample = x[::step, ::step].ravel()
    fit = np.full_like(sample, np.median(sample))
    coef = np.zeros(6)
    for _ in range(5):
        residual = sample - fit
        inliers = np.abs(residual) <= 2.5 * _spread(residual)
        coef = np.linalg.lstsq(basis[inliers], sample[inliers], rcond=None)[0]
        fit = basis @ coef
    c0, cu, cv, cuu, cuv, cvv = coef
    vc = v[:, None]
    return c0 + cu * u + cv * vc + cuu * u * u + cuv * vc * u + cvv * vc * vc


def _smooth(x: np.ndarray) -> np.ndarray:
    """A 3x3 binomial filter ([1, 2, 1] / 4 on each axis, edges repeated): noise sigma x 0.375."""
    p = np.pad(x, 1, mode="edge")
    rows = p[:-2] + 2 * p[1:-1] + p[2:]
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 16


def _otsu(x: np.ndarray) -> float:
    """Otsu's threshold of the values in [0, 1] (256 bins): the one that maximises the
    between-class variance."""
    bins = np.clip(np.round(x.ravel() * 255), 0, 255).astype(np.intp)
    p = np.bincount(bins, minlength=256) / bins.size
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    return (int(np.nanargmax(np.nan_to_num(between, nan=-1.0))) + 0.5) / 255


def _keep_digit(candidate: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """The pixels of the 8-connected components of ``candidate`` holding at least
    KEEP_FRACTION of the largest component's ``strong`` pixels."""
    h, w = candidate.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = candidate
    edges = np.diff(padded, axis=1)
    row, start = np.nonzero(edges == 1)  # each run: row, first column, one past its last
    _, stop = np.nonzero(edges == -1)
    # Runs in adjacent rows touch (8-connected) when each starts at most one past the other's
    # end; keys row * (w + 2) + column order all runs, so searchsorted finds each run's
    # touching runs in the next row as one index range [lo, hi).
    key = w + 2
    lo = np.searchsorted(row * key + stop, (row + 1) * key + start, side="left")
    hi = np.searchsorted(row * key + start, (row + 1) * key + stop, side="right")
    parent = list(range(len(row)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, (first, last) in enumerate(zip(lo.tolist(), hi.tolist())):
        for b in range(first, last):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    labels = np.array([find(i) for i in range(len(row))], dtype=np.intp)
    cumulative = np.zeros((h, w + 1), dtype=np.intp)
    np.cumsum(strong, axis=1, out=cumulative[:, 1:])
    ink = np.bincount(labels, weights=cumulative[row, stop] - cumulative[row, start])
    kept = ink[labels] >= KEEP_FRACTION * ink.max()
    marks = np.zeros((h, w + 1), dtype=np.intp)
    np.add.at(marks, (row[kept], start[kept]), 1)
    np.add.at(marks, (row[kept], stop[kept]), -1)
    return np.cumsum(marks, axis=1)[:, :w] > 0
