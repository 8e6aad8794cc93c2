"""The validation split: which training images are held out to choose and stop on, so that the
test set is looked at once, at the end. Only the choice of indices; what is evaluated on them
is the trainer's.
"""

from __future__ import annotations

import numpy as np

# The default validation set is 1/VAL_DIVISOR of the training images: 5,000 of MNIST's 60,000.
VAL_DIVISOR = 12


def default_val_size(n_train: int) -> int:
    """The validation images held out when ``val`` is not given: a twelfth, rounded down."""
    return n_train // VAL_DIVISOR


def validation_split(labels: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted, for ``n_val`` held-out images.

    Class-balanced: each class gives its share of ``n_val`` in proportion to its count (the
    shares rounded by largest remainder, ties to the lower class, so they sum to ``n_val``),
    drawn at random within the class from a generator seeded by ``seed`` alone. The same labels,
    size and seed give the same split, so a resumed run holds out the same images.
    """
    n = len(labels)
    if not 0 <= n_val < n:
        raise ValueError(
            f"Trainer: val must be in [0, {n - 1}] (the training set has {n} images), got {n_val}"
        )
    if n_val == 0:
        return np.arange(n), np.arange(0)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n_val / n
    share = np.floor(quota).astype(np.int64)
    short = n_val - int(share.sum())
    order = np.lexsort((np.arange(len(classes)), -(quota - share)))  # largest remainder first
    share[order[:short]] += 1
    rng = np.random.default_rng([seed, 3])
    held = [
        rng.choice(np.flatnonzero(labels == c), k, replace=False)
        for c, k in zip(classes, share)
        if k
    ]
    val = np.sort(np.concatenate(held))
    keep = np.ones(n, dtype=bool)
    keep[val] = False
    return np.flatnonzero(keep), val
