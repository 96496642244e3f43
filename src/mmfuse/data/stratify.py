"""A seeded train/val/test split that keeps each class's share in every split (`data.stratify`).

Each class's ideal count in a split is its size times the split's fraction;
the split gets that count rounded down or up, so every class is within one
sample of its ideal share in train, val and test. Which classes round up is
chosen so that the split sizes are those of the plain seeded split
(round(f_train n), round(f_val n), the rest) whenever such a choice exists
(it does unless those two roundings overshoot together; then the nearest sizes
are taken), with ties among classes broken by the seeded `order`. Within a
class, rows keep the seeded order of the plain split: its first rows train,
the next validate, the rest test.

scikit-learn's StratifiedShuffleSplit is not used: it is not a dependency,
makes two-way splits (three need two passes, whose roundings compound), and
refuses a class of a single sample.
"""
from __future__ import annotations

import math
from typing import Sequence


def _snap(x: float) -> float:
    """Counts like 0.1 * 30 are 3.0000000000000004 in floating point: an integer is an integer."""
    return float(round(x)) if abs(x - round(x)) < 1e-9 else x


def stratified_counts(sizes: Sequence[int], fractions: Sequence[float],
                      order: Sequence[int]) -> list[tuple[int, int, int]]:
    """Per class (train, val, test) counts; `sizes[k]` rows of class k, `order` a permutation of the classes."""
    f_train, f_val = fractions[0], fractions[1]
    n = sum(sizes)
    ideal_train = [_snap(f_train * s) for s in sizes]
    ideal_fit = [_snap((f_train + f_val) * s) for s in sizes]  # train + val
    floor_train, floor_fit = [math.floor(x) for x in ideal_train], [math.floor(x) for x in ideal_fit]
    # rounded: remainders that are equal in exact arithmetic must compare equal (see `both`)
    rem_train = [round(x - f, 9) for x, f in zip(ideal_train, floor_train)]
    rem_fit = [round(x - f, 9) for x, f in zip(ideal_fit, floor_fit)]
    # rounding class k's train count up (a_k = 1) and its train+val count up (b_k = 1) must come from one offset
    # c_k in [0, 1) (up where c_k < remainder), which keeps train <= train+val and every split within one sample:
    # classes whose train remainder is the smaller one (or equal) cannot round train up alone, the others cannot
    # round train+val up alone
    both = [k for k in order if 0 < rem_train[k] == rem_fit[k]]    # a_k = b_k
    fit_wider = [k for k in order if 0 < rem_train[k] < rem_fit[k]]  # a_k = 1 forces b_k = 1
    fit_only = [k for k in order if rem_train[k] == 0 < rem_fit[k]]  # a_k = 0, b_k free
    train_wider = [k for k in order if 0 < rem_fit[k] < rem_train[k]]  # a_k = 0 forces b_k = 0
    train_only = [k for k in order if rem_fit[k] == 0 < rem_train[k]]  # b_k = 0, a_k free
    raise_b, keep_b = both + fit_wider, train_wider + train_only  # up in train: b forced up / b free or 0
    n_train_split = int(round(f_train * n))
    a_total = n_train_split - sum(floor_train)
    b_total = n_train_split + int(round(f_val * n)) - sum(floor_fit)
    a_total = min(max(a_total, 0), len(raise_b) + len(keep_b))

    def b_range(p: int) -> tuple[int, int]:
        """The train+val round-ups possible when p classes of `raise_b` (both first) round train up."""
        free = len(fit_wider) - max(0, p - len(both)) + len(fit_only) + min(a_total - p, len(train_wider))
        return p, p + free

    choices = [p for p in range(a_total + 1) if p <= len(raise_b) and a_total - p <= len(keep_b)]
    p = min(choices, key=lambda q: max(b_range(q)[0] - b_total, b_total - b_range(q)[1], 0))
    lo, hi = b_range(p)
    b_total = min(max(b_total, lo), hi)

    up_train = set(raise_b[:p]) | set(keep_b[:a_total - p])
    forced_fit = [k for k in raise_b if k in up_train]
    free_fit = [k for k in order if (k in fit_wider and k not in up_train) or k in fit_only
                or (k in train_wider and k in up_train)]
    up_fit = set(forced_fit) | set(free_fit[:b_total - lo])
    counts = []
    for k, size in enumerate(sizes):
        train = floor_train[k] + (k in up_train)
        fit = floor_fit[k] + (k in up_fit)
        counts.append((train, fit - train, size - fit))
    return counts
