"""Per-group statistics over seeds: mean, std, 95% CI, the best group, and how far each other group is behind it.

For each metric the best group (highest mean, lowest for loss-like metrics) is compared with every other group:

- the gap (best minus other, oriented so that > 0 means behind) with its 95% CI: a paired t interval over
  matching seeds when both groups ran exactly the same seeds (the seed fixes initialisation and batch order,
  so paired differences cancel what the seed contributes), otherwise Welch's interval (unequal variances);
- the two-sided p-value of the matching t-test, raw and corrected for multiple comparisons over the
  comparisons of that metric (Holm-Bonferroni by default, Bonferroni or none on request); whether the best
  group's lead is significant follows the corrected p-value;
- a gap without variance (paired differences all equal, or both groups constant) is untestable with these
  seeds: no p-value and no interval, never p = 0;
- for a lead that is not significant, the smallest gap these seeds detect with power 0.8 and the seeds per
  group that would detect the observed gap, both at the level the comparison is judged at (alpha over the
  number of comparisons when corrected) and taking the observed SD as the true one (noncentral t).

Groups with at least BOOTSTRAP_MIN_RUNS runs also get a BCa bootstrap CI of the mean (fixed random seed).
docs/STATISTICS.md gives the formulas and what the family of a correction is.
"""
from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as scistats

from mmfuse.reporting.runs import key_label

ALPHA, POWER = 0.05, 0.8
PAIRED, WELCH, NO_TEST = "paired t-test", "Welch's t-test", "no test (fewer than 2 runs)"
UNTESTABLE_PAIRED = "untestable: paired differences all equal"
UNTESTABLE_WELCH = "untestable: both groups constant"
TESTS = (PAIRED, WELCH)
CORRECTIONS = ("holm", "bonferroni", "none")
BOOTSTRAP_MIN_RUNS, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 5, 9999, 0
# SciPy 1.15 renamed bootstrap's random_state to rng; either makes the resampling repeatable
BOOTSTRAP_RNG_ARG = "rng" if "rng" in inspect.signature(scistats.bootstrap).parameters else "random_state"
MAX_SEEDS = 1_000_000  # beyond this, "seeds needed" is reported as infinite
# a spread this small relative to the values is floating-point noise (0.9 - 0.8 != 0.92 - 0.82 in binary)
CONSTANT_RTOL = 1e-12
LOWER_IS_BETTER = re.compile(r"(loss|mae|mse|rmse|error|err|nll|perplexity)", re.IGNORECASE)
STAGE_ORDER = ("test/", "val/", "train/")
STAT_COLUMNS = ["metric", "higher_is_better", "group", "n", "mean", "std", "ci95_low", "ci95_high",
                "boot_ci95_low", "boot_ci95_high", "best", "gap_to_best", "gap_ci95_low", "gap_ci95_high",
                "test_vs_best", "p_vs_best", "correction", "p_vs_best_corrected", "best_lead_significant",
                "detectable_gap", "seeds_needed"]


def higher_is_better(metric: str) -> bool:
    return not LOWER_IS_BETTER.search(metric.rsplit("/", 1)[-1])


def metric_order(metrics: list[str]) -> list[str]:
    """test metrics first, then best-so-far validation metrics, the rest of validation, training."""
    def rank(m: str) -> tuple:
        stage = next((i for i, s in enumerate(STAGE_ORDER) if m.startswith(s)), len(STAGE_ORDER))
        return (stage, not m.endswith("_best"), m)

    return sorted(metrics, key=rank)


def headline_metrics(metrics: list[str]) -> list[str]:
    """What a decision rests on: test metrics and best validation scores (all metrics if none)."""
    chosen = [m for m in metric_order(metrics) if m.startswith("test/") or m.endswith("_best")]
    return chosen or metric_order(metrics)


def ci95(values: np.ndarray) -> tuple[float, float]:
    """95% confidence interval of the mean, from the t-distribution with n-1 degrees of freedom."""
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = scistats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return values.mean() - half, values.mean() + half


def bootstrap_ci95(values: np.ndarray) -> tuple[float, float]:
    """BCa bootstrap 95% CI of the mean for at least BOOTSTRAP_MIN_RUNS non-constant values, else NaN.

    The values are sorted first, so that the resamples, and the interval, do not depend on the order of the runs.
    """
    if len(values) < BOOTSTRAP_MIN_RUNS or is_constant(values, values):
        return float("nan"), float("nan")
    values, rng = np.sort(values), np.random.default_rng(BOOTSTRAP_SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample distribution gives NaN, reported as "-"
        ci = scistats.bootstrap((values,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95,
                                method="BCa", **{BOOTSTRAP_RNG_ARG: rng}).confidence_interval
    return float(ci.low), float(ci.high)


def is_constant(values: np.ndarray, scale_of: np.ndarray) -> bool:
    """True when `values` do not vary beyond rounding, relative to the magnitude of `scale_of`."""
    return bool(np.ptp(values) <= CONSTANT_RTOL * max(1.0, float(np.abs(scale_of).max())))


def by_seed(values: np.ndarray, seeds: np.ndarray) -> dict | None:
    """{seed: value}, or None where seeds are missing or repeated (no pairing possible)."""
    if pd.isna(seeds).any() or len(set(seeds.tolist())) < len(seeds):
        return None
    return dict(zip(seeds.tolist(), values.tolist()))


@dataclass(frozen=True)
class Gap:
    """How far a group is behind the best one: the test used, the gap, its standard error and degrees of freedom.

    `sds` are the SDs the standard error comes from: of the paired differences (one), or of the two groups
    (Welch); what a larger number of seeds would divide.
    """

    test: str
    gap: float
    se: float = float("nan")
    df: float = float("nan")
    sds: tuple[float, ...] = ()

    @property
    def tested(self) -> bool:
        return self.test in TESTS

    @property
    def p(self) -> float:
        """Two-sided p-value of gap / se under the t distribution with df degrees of freedom."""
        return float(2 * scistats.t.sf(abs(self.gap) / self.se, self.df)) if self.tested else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        if not self.tested:
            return float("nan"), float("nan")
        half = scistats.t.ppf(0.975, self.df) * self.se
        return self.gap - half, self.gap + half


def gap_to_best(best: np.ndarray, best_seeds: np.ndarray, other: np.ndarray, other_seeds: np.ndarray,
                sign: float = 1.0) -> Gap:
    """The gap sign * (best - other): paired over matching seeds, else Welch; untestable without variance."""
    a, b = by_seed(best, best_seeds), by_seed(other, other_seeds)
    paired = a is not None and b is not None and len(a) >= 2 and a.keys() == b.keys()
    if paired:
        seeds = sorted(a)
        diffs = sign * (np.array([a[s] for s in seeds]) - np.array([b[s] for s in seeds]))
        if is_constant(diffs, np.concatenate([best, other])):
            return Gap(UNTESTABLE_PAIRED, float(diffs.mean()))
        sd = float(diffs.std(ddof=1))
        return Gap(PAIRED, float(diffs.mean()), sd / np.sqrt(len(diffs)), len(diffs) - 1, (sd,))
    gap = float(sign * (best.mean() - other.mean()))
    if len(best) < 2 or len(other) < 2:
        return Gap(NO_TEST, gap)
    if is_constant(best, best) and is_constant(other, other):
        return Gap(UNTESTABLE_WELCH, gap)
    s1, s2 = float(best.std(ddof=1)), float(other.std(ddof=1))
    v1, v2 = s1**2 / len(best), s2**2 / len(other)
    df = (v1 + v2) ** 2 / (v1**2 / (len(best) - 1) + v2**2 / (len(other) - 1))  # Welch-Satterthwaite
    return Gap(WELCH, gap, float(np.sqrt(v1 + v2)), float(df), (s1, s2))


def corrected(p: np.ndarray, correction: str) -> np.ndarray:
    """p-values corrected over the family of the finite ones (NaN: no test, not part of the family).

    holm: Holm's step-down, the i-th smallest of m multiplied by (m - i + 1), made monotone and capped at 1;
    bonferroni: multiplied by m and capped at 1; none: unchanged.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r}: expected one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p, dtype=float)
    out = p.copy()
    tested = np.flatnonzero(np.isfinite(p))
    m = len(tested)
    if correction == "bonferroni":
        out[tested] = np.minimum(1.0, p[tested] * m)
    elif correction == "holm" and m:
        order = tested[np.argsort(p[tested], kind="stable")]
        out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def family_alpha(n_tests: int, correction: str) -> float:
    """The per-comparison level a lead must reach to be significant for sure: alpha / m unless uncorrected.

    Holm's first step and Bonferroni test at alpha / m; Holm's later steps are more lenient, so power
    figures at alpha / m are what is sufficient under either.
    """
    return ALPHA if correction == "none" or n_tests <= 1 else ALPHA / n_tests


def power(noncentrality: float | np.ndarray, df: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """Power of the two-sided t-test at level alpha: P(|T| > t_crit) with T noncentral t(df, noncentrality)."""
    crit = scistats.t.ppf(1 - alpha / 2, df)
    # the lower tail as the upper tail of -T: nct.cdf(-crit, ...) returns NaN for some df=1 arguments
    return scistats.nct.sf(crit, df, noncentrality) + scistats.nct.sf(crit, df, -noncentrality)


@lru_cache(maxsize=None)
def detectable_noncentrality(df: float, alpha: float) -> float:
    """The noncentrality at which the two-sided t-test at level alpha has power POWER."""
    high = 1.0
    while power(high, df, alpha) < POWER:
        high *= 2
    return float(optimize.brentq(lambda nc: power(nc, df, alpha) - POWER, 0.0, high, xtol=1e-10))


def detectable_gap(gap: Gap, alpha: float) -> float:
    """The smallest true gap these runs detect with power POWER, if the observed SDs are the true ones."""
    return detectable_noncentrality(gap.df, alpha) * gap.se if gap.tested else float("nan")


def se_and_df(gap: Gap, n: int) -> tuple[float, float]:
    """Standard error and degrees of freedom of the same test with n seeds per group and the same SDs."""
    if gap.test == PAIRED:
        return gap.sds[0] / np.sqrt(n), n - 1
    var = gap.sds[0] ** 2 + gap.sds[1] ** 2
    df = var**2 * (n - 1) / (gap.sds[0] ** 4 + gap.sds[1] ** 4)  # Welch-Satterthwaite with n1 = n2 = n
    return np.sqrt(var / n), df


def seeds_needed(gap: Gap, alpha: float) -> float:
    """Seeds per group (in all) whose test detects the observed gap with power POWER; inf if no number does.

    Power grows with n, so the smallest such n is found by doubling, then bisection.
    """
    if not gap.tested:
        return float("nan")
    if gap.gap <= 0:
        return float("inf")

    def enough(n: int) -> bool:
        se, df = se_and_df(gap, n)
        return bool(power(gap.gap / se, df, alpha) >= POWER)

    low, high = 1, 2  # enough(low) is False by convention: one seed tests nothing
    while not enough(high):
        if high >= MAX_SEEDS:
            return float("inf")
        low, high = high, min(2 * high, MAX_SEEDS)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return float(high)


def metric_stats(runs: pd.DataFrame, metric: str, correction: str = "holm") -> pd.DataFrame:
    """One row per group for one metric: n, mean, std, CIs, best, gap to the best with CI, tests and power."""
    up = higher_is_better(metric)
    measured = runs.dropna(subset=[metric])
    samples = {g: (grp[metric].to_numpy(dtype=float), grp["seed"].to_numpy())
               for g, grp in measured.groupby("group", sort=True)}
    if not samples:
        return pd.DataFrame(columns=STAT_COLUMNS)
    means = {g: v.mean() for g, (v, _) in samples.items()}
    best = (max if up else min)(means, key=means.get)
    gaps = {g: gap_to_best(*samples[best], *samples[g], sign=1.0 if up else -1.0) for g in samples if g != best}
    p_raw = np.array([gaps[g].p for g in gaps])
    p_corr = dict(zip(gaps, corrected(p_raw, correction)))
    alpha = family_alpha(int(np.isfinite(p_raw).sum()), correction)
    rows = []
    for g, (values, _) in samples.items():
        gap = gaps.get(g, Gap("", 0.0))
        significant = bool(p_corr.get(g, float("nan")) < ALPHA)
        power_shown = gap.tested and not significant  # a significant lead needs no more seeds
        rows.append({"metric": metric, "higher_is_better": up, "group": g, "n": len(values), "mean": means[g],
                     "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                     **dict(zip(["ci95_low", "ci95_high"], ci95(values))),
                     **dict(zip(["boot_ci95_low", "boot_ci95_high"], bootstrap_ci95(values))),
                     "best": g == best, "gap_to_best": gap.gap,
                     **dict(zip(["gap_ci95_low", "gap_ci95_high"], gap.ci95)),
                     "test_vs_best": gap.test, "p_vs_best": gap.p, "correction": correction,
                     "p_vs_best_corrected": p_corr.get(g, float("nan")), "best_lead_significant": significant,
                     "detectable_gap": detectable_gap(gap, alpha) if power_shown else float("nan"),
                     "seeds_needed": seeds_needed(gap, alpha) if power_shown else float("nan")})
    return pd.DataFrame(rows, columns=STAT_COLUMNS)


def summarise_metrics(runs: pd.DataFrame, metrics: list[str], correction: str = "holm") -> pd.DataFrame:
    """Long table, one row per (metric, group), of completed runs that carry a `group` column.

    The correction's family is one metric's comparisons with its best group.
    """
    present = [m for m in metric_order(metrics) if m in runs]
    slim = runs[["group", "seed", *present]]  # grouping the full frame (hundreds of config columns) is slow
    parts = [metric_stats(slim, m, correction) for m in present]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=STAT_COLUMNS)


def seed_list(seeds: pd.Series) -> str:
    """`0,1,2` (seeds are stored as floats once a column holds a missing one)."""
    return ",".join(str(int(s)) if isinstance(s, (int, float)) and float(s).is_integer() else str(s)
                    for s in sorted(seeds.dropna()))


def group_facts(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: its key values, number of runs, seeds, parameter count, train and wall time."""
    rows = []
    for g, grp in runs.groupby("group", sort=True):
        row = {"group": g, **{key_label(k): grp[k].iloc[0] for k in keys}, "n": len(grp),
               "seeds": seed_list(grp["seed"]),
               "params": grp["params"].mean(),
               "fit_seconds mean": grp["fit_seconds"].mean(), "fit_seconds std": grp["fit_seconds"].std(ddof=1),
               "wall_seconds mean": grp["wall_seconds"].mean()}
        rows.append(row)
    return pd.DataFrame(rows)


WIDE_FIELDS = ["mean", "std", "n", "ci95_low", "ci95_high", "boot_ci95_low", "boot_ci95_high", "best", "gap_to_best",
               "gap_ci95_low", "gap_ci95_high", "test_vs_best", "p_vs_best", "p_vs_best_corrected",
               "best_lead_significant", "detectable_gap", "seeds_needed"]


def wide_summary(facts: pd.DataFrame, long: pd.DataFrame, correction: str = "holm") -> pd.DataFrame:
    """One row per group: its facts, the correction, then `<metric> <field>` for every field of WIDE_FIELDS."""
    blocks = [facts.set_index("group").assign(correction=correction)]
    for metric, rows in long.groupby("metric", sort=False) if not long.empty else []:
        block = rows.set_index("group")[WIDE_FIELDS]
        blocks.append(block.set_axis([f"{metric} {f}" for f in WIDE_FIELDS], axis=1))
    wide = pd.concat(blocks, axis=1).reindex(blocks[0].index)
    return wide.copy().reset_index()  # the copy consolidates one block per column, which pandas warns about
