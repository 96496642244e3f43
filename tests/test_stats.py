"""The statistics of `mmfuse compare` against independent oracles: SciPy's tests and intervals, Holm by hand,
power by simulation and by the normal closed form. Made-up numbers only; no runs, no training."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmfuse.reporting.stats import (
    ALPHA,
    PAIRED,
    POWER,
    UNTESTABLE_PAIRED,
    UNTESTABLE_WELCH,
    WELCH,
    Gap,
    bootstrap_ci95,
    corrected,
    detectable_gap,
    gap_to_best,
    seeds_needed,
    summarise_metrics,
)
from mmfuse.reporting.tables import UNTESTABLE, detail_table, lead_table, legend, mark, power_table

BEST = np.array([0.90, 0.92, 0.91, 0.93, 0.89])
# per-seed gaps to BEST: b clearly behind, c and d behind with raw p < 0.05 that Holm over 3 comparisons lifts
GAPS = {"b": [0.02, 0.01, 0.03, 0.02, 0.03], "c": [0.02, 0.00, 0.03, 0.01, 0.04], "d": [0.03, 0.0, 0.02, 0.04, 0.015]}


def runs_of(groups: dict[str, tuple[list[int], list[float]]]) -> pd.DataFrame:
    rows = [(g, s, v) for g, (seeds, values) in groups.items() for s, v in zip(seeds, values)]
    return pd.DataFrame(rows, columns=["group", "seed", "test/acc"])


def made_up(**extra: tuple[list[int], list[float]]) -> pd.DataFrame:
    seeds = list(range(len(BEST)))
    return runs_of({"a": (seeds, list(BEST)), **{g: (seeds, list(BEST - np.array(d))) for g, d in GAPS.items()},
                    **extra})


def table(runs: pd.DataFrame, correction: str = "holm") -> pd.DataFrame:
    return summarise_metrics(runs, ["test/acc"], correction).set_index("group")


def test_pairing_is_by_seed_not_by_row_order():
    runs = made_up()
    shuffled = runs.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled["seed"].equals(runs["seed"])
    pd.testing.assert_frame_equal(table(runs), table(shuffled).loc[table(runs).index])
    # and the p-value is the seed-matched one, which differs from pairing rows in the order they came
    b = shuffled[shuffled["group"] == "b"]
    a = shuffled[shuffled["group"] == "a"]
    by_seed = stats.ttest_rel(a.sort_values("seed")["test/acc"], b.sort_values("seed")["test/acc"]).pvalue
    by_row = stats.ttest_rel(a["test/acc"], b["test/acc"]).pvalue
    assert table(shuffled).loc["b", "p_vs_best"] == pytest.approx(by_seed, rel=1e-9)
    assert by_row != pytest.approx(by_seed, rel=1e-3)


def test_group_ci_and_gap_ci_equal_scipys_t_intervals():
    runs = made_up(e=([0, 1, 7], [0.70, 0.75, 0.72]))  # other seeds: Welch
    out = table(runs)
    for g, grp in runs.groupby("group"):
        v = grp["test/acc"].to_numpy()
        low, high = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
        assert (out.loc[g, "ci95_low"], out.loc[g, "ci95_high"]) == pytest.approx((low, high), rel=1e-12)
    paired = stats.ttest_rel(BEST, BEST - np.array(GAPS["b"]))
    assert out.loc["b", "test_vs_best"] == PAIRED and out.loc["b", "p_vs_best"] == pytest.approx(paired.pvalue)
    assert (out.loc["b", "gap_ci95_low"], out.loc["b", "gap_ci95_high"]) == pytest.approx(
        tuple(paired.confidence_interval(0.95)), rel=1e-9)
    welch = stats.ttest_ind(BEST, [0.70, 0.75, 0.72], equal_var=False)
    assert out.loc["e", "test_vs_best"] == WELCH and out.loc["e", "p_vs_best"] == pytest.approx(welch.pvalue)
    assert (out.loc["e", "gap_ci95_low"], out.loc["e", "gap_ci95_high"]) == pytest.approx(
        tuple(welch.confidence_interval(0.95)), rel=1e-9)
    assert out.loc["e", "gap_to_best"] == pytest.approx(BEST.mean() - np.mean([0.70, 0.75, 0.72]))


def test_a_lower_is_better_metric_is_oriented_so_that_the_gap_is_how_far_behind():
    runs = made_up().assign(**{"test/loss": lambda d: 1 - d["test/acc"]})
    out = summarise_metrics(runs, ["test/loss", "test/acc"]).set_index(["metric", "group"])
    for col in ("gap_to_best", "gap_ci95_low", "gap_ci95_high", "p_vs_best", "p_vs_best_corrected"):
        assert out.loc[("test/loss", "c"), col] == pytest.approx(out.loc[("test/acc", "c"), col], rel=1e-9), col
    assert out.loc[("test/loss", "c"), "gap_to_best"] > 0


def test_holm_equals_a_hand_computation_and_the_marks_follow_it():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])  # NaN: no test, not in the family of m = 4
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    holm = corrected(p, "holm")
    assert holm[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and np.isnan(holm[4])
    assert corrected(p, "bonferroni")[:4] == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert corrected(np.array([0.6, 0.9]), "holm") == pytest.approx([1.0, 1.0])  # capped at 1
    np.testing.assert_array_equal(corrected(p, "none"), p)
    with pytest.raises(ValueError, match="holm, bonferroni, none"):
        corrected(p, "bh")

    out = table(made_up())
    raw = {g: stats.ttest_rel(BEST, BEST - np.array(d)).pvalue for g, d in GAPS.items()}
    order = sorted(raw, key=raw.get)
    hand, running = {}, 0.0
    for i, g in enumerate(order):
        running = max(running, (len(order) - i) * raw[g])
        hand[g] = min(1.0, running)
    for g in GAPS:
        assert out.loc[g, "p_vs_best"] == pytest.approx(raw[g])
        assert out.loc[g, "p_vs_best_corrected"] == pytest.approx(hand[g])
        assert out.loc[g, "best_lead_significant"] == (hand[g] < ALPHA)
    flipped = [g for g in GAPS if raw[g] < ALPHA <= hand[g]]
    assert flipped and out.loc["b", "best_lead_significant"]  # the correction changed a verdict, not all of them
    marks = out.reset_index().apply(mark, axis=1).set_axis(out.index)
    assert marks["a"] == "★" and marks["b"] == "" and all(marks[g] == "≈" for g in flipped)
    uncorrected = table(made_up(), "none")
    assert all(uncorrected.loc[g, "best_lead_significant"] for g in flipped)
    assert "Holm-corrected p" in legend("holm") and "not corrected" in legend("none")


def test_a_gap_without_variance_is_untestable_never_p_zero():
    # quantised accuracies: the same difference on every seed (in binary, 0.9 - 0.8 and 0.92 - 0.82 differ)
    runs = runs_of({"a": ([0, 1, 2], [0.90, 0.92, 0.95]), "b": ([0, 1, 2], [0.80, 0.82, 0.85]),
                    "c": ([0, 1, 2], [0.90, 0.92, 0.95]),                   # identical to the best on every seed
                    "d": ([3, 4], [0.70, 0.70]), "e": ([5], [0.6])})
    constant = runs_of({"a": ([0, 1], [0.9, 0.9]), "b": ([2, 3], [0.8, 0.8])})  # both constant, no pairing
    out = pd.concat([table(runs), table(constant).loc[["b"]].rename(index={"b": "f"})])
    assert out.loc["b", "test_vs_best"] == UNTESTABLE_PAIRED and out.loc["c", "test_vs_best"] == UNTESTABLE_PAIRED
    assert out.loc["f", "test_vs_best"] == UNTESTABLE_WELCH
    assert out.loc["d", "test_vs_best"] == WELCH  # one constant group: Welch uses the other's variance
    for g in ("b", "c", "f"):
        assert np.isnan(out.loc[g, "p_vs_best"]) and np.isnan(out.loc[g, "p_vs_best_corrected"])
        assert np.isnan(out.loc[g, "gap_ci95_low"]) and np.isnan(out.loc[g, "seeds_needed"])
        assert not out.loc[g, "best_lead_significant"]
    assert out.loc["b", "gap_to_best"] == pytest.approx(0.1)
    stats_table = summarise_metrics(runs, ["test/acc"])
    leads = lead_table(stats_table, ["test/acc"]).set_index("group")["test/acc"]
    assert leads["b"] == f"0.100 · {UNTESTABLE}" and UNTESTABLE in leads["e"]
    shown = " ".join(detail_table(stats_table).astype(str).to_numpy().ravel()) + " ".join(leads)
    assert "p<0.001" not in shown and "p=0.000" not in shown and "nan" not in shown.lower()
    assert stats_table.set_index("group").apply(mark, axis=1)[["b", "c", "e"]].tolist() == ["?", "?", "?"]
    # the only family member left is d: Holm over one comparison is the raw p-value
    assert out.loc["d", "p_vs_best_corrected"] == pytest.approx(out.loc["d", "p_vs_best"])


def simulated_power(gap: float, sd: float, n: int, alpha: float, reps: int = 20_000, seed: int = 0) -> float:
    """Share of paired t-tests on n normal differences (mean gap, SD sd) rejecting at level alpha."""
    d = np.random.default_rng(seed).normal(gap, sd, size=(reps, n))
    return float((stats.ttest_1samp(d, 0.0, axis=1).pvalue < alpha).mean())


@pytest.mark.parametrize("n, alpha", [(3, 0.05), (5, 0.05), (5, 0.05 / 11), (12, 0.01)])
def test_detectable_gap_has_power_0_8_in_a_simulation(n, alpha):
    sd = 0.02
    gap = Gap(PAIRED, 0.0, sd / np.sqrt(n), n - 1, (sd,))
    smallest = detectable_gap(gap, alpha)
    # 20,000 draws: the standard error of a simulated power of 0.8 is 0.003
    assert simulated_power(smallest, sd, n, alpha) == pytest.approx(POWER, abs=0.012)
    assert simulated_power(0.8 * smallest, sd, n, alpha) < POWER - 0.05


def test_detectable_gap_tends_to_the_normal_closed_form_for_many_seeds():
    se = 0.01
    gap = Gap(PAIRED, 0.0, se, 10**6, (se * 1000,))
    closed_form = (stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)) * se  # 2.8016 standard errors
    assert detectable_gap(gap, ALPHA) == pytest.approx(closed_form, rel=1e-4)


def test_seeds_needed_is_the_smallest_number_with_power_0_8_in_a_simulation():
    sd, observed = 0.02, 0.015
    gap = Gap(PAIRED, observed, sd / np.sqrt(3), 2, (sd,))
    n = int(seeds_needed(gap, ALPHA))
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    assert n >= (z * sd / observed) ** 2  # a t-test never needs fewer seeds than the z-test with known SD
    assert simulated_power(observed, sd, n, ALPHA) >= POWER - 0.012
    assert simulated_power(observed, sd, n - 1, ALPHA, seed=1) < POWER + 0.012
    assert seeds_needed(Gap(PAIRED, 0.0, 0.01, 2, (sd,)), ALPHA) == np.inf  # no gap: no number of seeds finds it


def test_welch_power_figures_match_a_simulation():
    s1, s2, n = 0.01, 0.03, 4
    best = np.array([0.90, 0.91, 0.92, 0.905])
    other = np.array([0.85, 0.88, 0.90, 0.86])
    gap = gap_to_best(best, np.array([0, 1, 2, 3]), other, np.array([4, 5, 6, 7]))
    assert gap.test == WELCH
    planned = Gap(WELCH, 0.0, np.sqrt((s1**2 + s2**2) / n), (s1**2 + s2**2) ** 2 * (n - 1) / (s1**4 + s2**4),
                  (s1, s2))
    smallest = detectable_gap(planned, ALPHA)
    rng = np.random.default_rng(0)
    a, b = rng.normal(smallest, s1, (20_000, n)), rng.normal(0.0, s2, (20_000, n))
    rejected = (stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < ALPHA).mean()
    assert rejected == pytest.approx(POWER, abs=0.02)  # Welch's df is itself an approximation


def test_power_figures_only_for_leads_that_are_not_significant_and_at_the_corrected_level():
    out = table(made_up())
    tied = [g for g in GAPS if not out.loc[g, "best_lead_significant"]]
    assert tied and out.loc[tied, "detectable_gap"].notna().all() and out.loc[tied, "seeds_needed"].notna().all()
    assert np.isnan(out.loc["b", "detectable_gap"]) and np.isnan(out.loc["a", "seeds_needed"])
    g = tied[0]
    sd = np.std(GAPS[g], ddof=1)
    holm_level = Gap(PAIRED, 0.0, sd / np.sqrt(len(BEST)), len(BEST) - 1, (sd,))
    assert out.loc[g, "detectable_gap"] == pytest.approx(detectable_gap(holm_level, ALPHA / len(GAPS)))
    uncorrected = table(made_up(), "none")
    assert np.isnan(uncorrected.loc["c", "detectable_gap"])  # significant uncorrected: nothing more to detect
    cells = power_table(summarise_metrics(made_up(), ["test/acc"]), ["test/acc"]).set_index("group")["test/acc"]
    assert sorted(cells.index) == sorted(tied)
    assert all(c.startswith("detects ") and c.endswith(" seeds") for c in cells)


def test_bootstrap_ci_is_deterministic_labelled_and_only_for_five_runs_or_more():
    values = np.array([0.90, 0.93, 0.91, 0.95, 0.89, 0.92])
    first, again = bootstrap_ci95(values), bootstrap_ci95(values.copy())
    assert first == again and first[0] < values.mean() < first[1]
    assert bootstrap_ci95(values[::-1]) == first  # the order of the runs does not matter
    ref = stats.bootstrap((np.sort(values),), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(0))
    assert first == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert all(np.isnan(bootstrap_ci95(values[:4])))
    assert all(np.isnan(bootstrap_ci95(np.full(6, 0.9))))  # constant: no interval, not a degenerate [0.9, 0.9]
    five = table(made_up())
    assert five["boot_ci95_low"].notna().all()
    assert "bootstrap 95% CI (BCa, n ≥ 5)" in detail_table(summarise_metrics(made_up(), ["test/acc"])).columns
    three = summarise_metrics(runs_of({"a": ([0, 1, 2], [0.9, 0.91, 0.93]), "b": ([0, 1, 2], [0.8, 0.9, 0.85])}),
                              ["test/acc"])
    assert three["boot_ci95_low"].isna().all() and not any("bootstrap" in c for c in detail_table(three).columns)
