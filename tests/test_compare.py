"""`mmfuse compare` on a tiny real sweep: files, numbers, failures, report, W&B, browser, bad input."""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT, require, run_cli
from mmfuse.reporting.stats import UNTESTABLE_PAIRED


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Terminal tables as wide as their content: their width otherwise follows whatever terminal (or none) runs the
    tests, and a cell wrapped across lines would not match the phrases the tests look for."""
    monkeypatch.setenv("COLUMNS", "400")

STRATEGIES, SEEDS = ("concat", "late"), (0, 1)
# CSV logging: a W&B run per job would cost more than the training (the W&B side is tested apart)
TINY = ["data.n_samples=300", "trainer.max_epochs=2", "callbacks=minimal", "logger=csv"]
# tensor fusion needs two modalities: this job fails at build time, as a user's mistake would
FAILING = ["fusion=tensor", "seed=0", "data.modalities=[tabular]", "data.interaction=redundant"]
HEAVY_MODULES = ("torch", "pytorch_lightning", "lightning", "mmfuse.train", "mmfuse.models", "mmfuse.fusion",
                 "mmfuse.encoders", "mmfuse.data")


def launch(*overrides: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.Popen([sys.executable, "-m", "mmfuse", "train", "-m", *overrides], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def shared_tiny_sweep(tmp_path_factory) -> Path:
    """2 strategies x 2 seeds + 1 failing job in one sweep folder, made once per test session.

    The two launches share the folder through hydra.sweep.dir and run side by side
    (process start-up, not training, is most of their cost).
    """
    base = tmp_path_factory.getbasetemp() / "tiny-fusion-sweep"
    sweep = base / "sweeps" / "2026-01-01_00-00-00_000000"
    if (base / "ready").exists():
        return sweep
    common = [f"paths.output_dir={base}", f"hydra.sweep.dir={sweep}", *TINY]
    good = launch(f"fusion={','.join(STRATEGIES)}", f"seed={','.join(map(str, SEEDS))}",
                  "data.modalities=[image,tabular]", *common)
    bad = launch(*FAILING, *common)
    good_out, good_err = good.communicate(timeout=300)
    _, bad_err = bad.communicate(timeout=300)
    assert good.returncode == 0, good_err[-3000:]
    assert bad.returncode == 1 and "fusion=tensor" in bad_err, bad_err[-3000:]
    (base / "ready").touch()
    return sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return shared_tiny_sweep(tmp_path_factory)


@pytest.fixture(scope="module")
def compared(sweep) -> subprocess.CompletedProcess:
    """`mmfuse compare <sweep> --log-wandb` through the CLI's main, reporting which modules it imported."""
    code = ("import json, sys\nfrom mmfuse.cli import main\nrc = main(sys.argv[1:])\n"
            f"print('IMPORTED=' + json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\nsys.exit(rc)")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, "-c", code, "compare", str(sweep), "--log-wandb"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def records(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/run.json"))]


def test_compare_writes_every_file(compared, sweep):
    assert compared.returncode == 0, compared.stderr[-3000:]
    out = sweep / "comparison"
    for name in ("summary.csv", "summary.md", "runs.csv", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    plots = sorted((out / "plots").glob("*.png"))
    names = {p.name for p in plots}
    assert {"bar_test_acc.png", "bar_val_acc_best.png", "curve_val_acc.png", "curve_val_loss.png"} <= names
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots)
    assert "Traceback" not in compared.stderr
    assert f"Comparison written to {out}" in compared.stdout and "report.html" in compared.stdout


def test_reporting_never_imports_training_code(compared):
    imported = next(line for line in compared.stdout.splitlines() if line.startswith("IMPORTED="))
    assert json.loads(imported.split("=", 1)[1]) == []


def test_summary_numbers_equal_those_recomputed_from_run_records(compared, sweep):
    summary = pd.read_csv(sweep / "comparison" / "summary.csv")
    done = [r for r in records(sweep) if r["status"] == "completed"]
    assert sorted(summary["group"]) == [f"fusion={s}" for s in STRATEGIES]
    metrics = [c[: -len(" mean")] for c in summary.columns if c.endswith(" mean") and "/" in c]
    assert {"test/acc", "test/f1", "val/acc_best", "test/loss"} <= set(metrics)
    for strategy in STRATEGIES:
        row = summary.set_index("group").loc[f"fusion={strategy}"]
        mine = [r for r in done if r["choices"]["fusion"] == strategy]
        assert row["n"] == len(SEEDS) and row["seeds"] == ",".join(map(str, SEEDS))
        assert row["params"] == mine[0]["params"]["total"]
        for m in metrics:
            values = pd.Series([r["metrics"][m] for r in mine])
            assert row[f"{m} mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12), m
            assert row[f"{m} std"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-12), m
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5
            assert row[f"{m} ci95_low"] == pytest.approx(values.mean() - half, rel=1e-9, abs=1e-12), m


def test_robustness_and_cost_tables_recompute_from_run_records(compared, sweep):
    """Mean ± std over seeds of the recorded robustness and cost, and MultiBench's effective robustness against late
    fusion."""
    import numpy as np

    robust = pd.read_csv(sweep / "comparison" / "robustness.csv").set_index("group")
    cost = pd.read_csv(sweep / "comparison" / "cost.csv").set_index("group")
    done = [r for r in records(sweep) if r["status"] == "completed"]
    by = {
        s: sorted((r for r in done if r["choices"]["fusion"] == s), key=lambda r: r["config"]["seed"])
        for s in STRATEGIES
    }

    def cell(values):
        values = pd.Series(values, dtype=float)
        if values.nunique() == 1:  # a figure that does not vary is shown once
            return f"{values.iloc[0]:.3f}"
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"

    for strategy, mine in by.items():
        row = robust.loc[f"fusion={strategy}"]
        assert row["clean (acc)"] == cell([r["robustness"]["clean"] for r in mine])
        assert row["no tabular"] == cell([r["robustness"]["present_subsets"]["image"] for r in mine])
        assert row["no image"] == cell([r["robustness"]["present_subsets"]["tabular"] for r in mine])
        assert row["AUC image"] == cell([np.mean(list(r["robustness"]["auc"]["image"].values())) for r in mine])
        assert int(cost.loc[f"fusion={strategy}", "params"]) == mine[0]["params"]["total"]
        # effective robustness: sum over severities of f - (lf + f(0) - lf(0)), lf the mean late-fusion curve
        late = np.mean([r["robustness"]["noise"]["tabular"]["gaussian"] for r in by["late"]], axis=0)
        eff = []
        for r in mine:
            per = [
                np.sum(np.array(f) - (lf + f[0] - lf[0]))
                for c, f in r["robustness"]["noise"]["tabular"].items()
                for lf in [np.mean([q["robustness"]["noise"]["tabular"][c] for q in by["late"]], axis=0)]
            ]
            eff.append(np.mean(per))
        assert row["eff tabular"] == cell(eff)
        assert late.shape == (11,)
    assert robust.loc["fusion=late", "eff image"].startswith("0.000 ±")  # late against itself
    plots = {p.name for p in (sweep / "comparison" / "plots").glob("*.png")}
    assert {
        "robustness_noise_image.png",
        "robustness_noise_tabular.png",
        "robustness_missing_heatmap.png",
        "cost_vs_test_acc.png",
    } <= plots
    assert "Robustness on the test set: mean ± std over seeds" in compared.stdout
    assert "effective robustness against late fusion" in compared.stdout
    md = (sweep / "comparison" / "summary.md").read_text()
    assert "### Robustness (mean ± std over seeds)" in md and "### Cost (mean ± std over seeds)" in md


def test_best_group_and_paired_test_over_matching_seeds(compared, sweep):
    summary = pd.read_csv(sweep / "comparison" / "summary.csv").set_index("group")
    by_seed = {
        s: {
            r["config"]["seed"]: r["metrics"]["test/acc"]
            for r in records(sweep)
            if r["status"] == "completed" and r["choices"]["fusion"] == s
        }
        for s in STRATEGIES
    }
    best, other = sorted(STRATEGIES, key=lambda s: -pd.Series(by_seed[s]).mean())
    assert bool(summary.loc[f"fusion={best}", "test/acc best"]) and not bool(
        summary.loc[f"fusion={other}", "test/acc best"]
    )
    diffs = [by_seed[best][s] - by_seed[other][s] for s in SEEDS]
    p = summary.loc[f"fusion={other}", "test/acc p_vs_best"]
    if max(diffs) - min(diffs) <= 1e-12:  # quantised accuracies often move together: no variance to test
        assert summary.loc[f"fusion={other}", "test/acc test_vs_best"] == UNTESTABLE_PAIRED and pd.isna(p)
    else:
        assert summary.loc[f"fusion={other}", "test/acc test_vs_best"] == "paired t-test"
        expected = stats.ttest_rel([by_seed[best][s] for s in SEEDS], [by_seed[other][s] for s in SEEDS])
        assert p == pytest.approx(expected.pvalue)
        assert summary.loc[f"fusion={other}", "test/acc p_vs_best_corrected"] == pytest.approx(expected.pvalue)  # m = 1
        assert (
            summary.loc[f"fusion={other}", "test/acc gap_ci95_low"],
            summary.loc[f"fusion={other}", "test/acc gap_ci95_high"],
        ) == pytest.approx(tuple(expected.confidence_interval(0.95)))
    assert set(summary["correction"]) == {"holm"}
    # loss: lower is better
    losses = {
        s: pd.Series(
            [
                r["metrics"]["test/loss"]
                for r in records(sweep)
                if r["status"] == "completed" and r["choices"]["fusion"] == s
            ]
        ).mean()
        for s in STRATEGIES
    }
    assert bool(summary.loc[f"fusion={min(losses, key=losses.get)}", "test/loss best"])


def test_failed_job_is_listed_as_failed_and_not_averaged(compared, sweep):
    runs = pd.read_csv(sweep / "comparison" / "runs.csv")
    assert len(runs) == len(STRATEGIES) * len(SEEDS) + 1
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 1 and "fusion=tensor" in failed["run_dir"].iloc[0]
    assert "at least 2 modalities" in failed["error"].iloc[0] and pd.isna(failed["group"].iloc[0])
    assert "fusion=tensor" not in set(pd.read_csv(sweep / "comparison" / "summary.csv")["group"])
    assert "1 run(s) did not complete" in compared.stdout and "failed" in compared.stdout
    for name in ("summary.md", "report.html"):
        assert "at least 2 modalities" in (sweep / "comparison" / name).read_text(), name


class StrictHTML(HTMLParser):
    """Fails on a closing tag that does not match the open one; collects ids, images and text."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "area", "base", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.ids, self.images, self.text = [], [], set(), {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images[attrs.get("data-file")] = attrs.get("src", "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_report_html_is_well_formed_self_contained_and_shows_everything(compared, sweep):
    out = sweep / "comparison"
    page = (out / "report.html").read_text()
    parser = StrictHTML()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert page.startswith("<!DOCTYPE html>") and "summary-synthetic" in parser.ids
    for png in (out / "plots").glob("*.png"):  # every plot embedded, byte for byte
        assert parser.images[png.name] == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    assert 'src="http' not in page and 'href="http' not in page  # nothing fetched from elsewhere
    text = " ".join(parser.text)
    assert "paired t-test" in text and "fusion=concat" in text and "fusion=late" in text
    # the exact command of each group, seeds joined, and the config key that tells them apart
    assert "mmfuse train -m fusion=concat seed=0,1" in text and "fusion.name=late" in text


def test_log_wandb_writes_a_compare_run_in_the_sweeps_group(compared, sweep):
    from mmfuse.tracking.wandb_offline import read_offline_run

    (folder,) = (sweep / "comparison" / "wandb").glob("offline-run-*")
    logged = read_offline_run(folder)
    # the group training gives a sweep's runs (train.instantiate_loggers; test_cli checks the training side)
    experiment = next(r for r in records(sweep) if r["status"] == "completed")["config"]["experiment_name"]
    assert logged["job_type"] == "compare" and logged["group"] == f"{experiment}-{sweep.name}"
    assert logged["exit_code"] == 0 and "compare" in logged["tags"]
    assert logged["summary"]["comparison/summary/_type"] == "table-file"
    assert logged["summary"]["comparison/summary/nrows"] == len(STRATEGIES)
    assert logged["summary"]["plots/bar_test_acc/_type"] == "image-file"
    assert f"wandb sync {folder}" in compared.stdout


def test_wandb_group_is_read_from_a_training_runs_offline_wandb_run(tmp_path):
    from mmfuse.reporting.wandb_log import sweep_group

    code = (
        "import sys, wandb\nrun = wandb.init(project='mmfuse', group='group-as-logged', job_type='train', "
        "dir=sys.argv[1], mode='offline', settings=wandb.Settings(silent=True))\nprint(run.dir)\nrun.finish()"
    )
    made = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    files_dir = made.stdout.strip().splitlines()[-1]  # what run.json records as wandb.dir
    runs = pd.DataFrame({"wandb_dir": [None, files_dir], "wandb_group": ["recomputed", "recomputed"]})
    assert sweep_group(runs) == ("group-as-logged", ["recomputed"])
    assert sweep_group(runs.iloc[:1]) == ("recomputed", ["recomputed"])  # no offline run: recomputed


def test_report_renders_in_a_headless_browser(compared, sweep, tmp_path):
    require(shutil.which("chromium") is not None, "Debian's chromium (the headless browser that opens report.html)")
    page = (sweep / "comparison" / "report.html").resolve().as_uri()
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1280,1600", page], capture_output=True, timeout=120
    )
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert 'id="summary-synthetic"' in dom and "fusion=concat" in dom and "<img" in dom


# ---------------------------------------------------------------- bad input


def copy_runs(sweep: Path, dest: Path, pattern: str = "*") -> list[Path]:
    """Copies of the sweep's run folders (records and Hydra snapshots only) to doctor."""
    copies = []
    for run in sorted(sweep.glob(pattern)):
        if (run / "run.json").is_file():
            copies.append(
                Path(
                    shutil.copytree(run, dest / run.name, ignore=shutil.ignore_patterns("checkpoints", "wandb", "csv"))
                )
            )
    return copies


def edit_record(run_dir: Path, **changes) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    for dotted, value in changes.items():
        node = record
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    (run_dir / "run.json").write_text(json.dumps(record))


def compare_in_process(capsys, *args: str) -> tuple[int, str, str]:
    from mmfuse.cli.compare import main

    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_corrupt_and_stale_records_are_listed_never_averaged(sweep, tmp_path, capsys):
    folder = tmp_path / "messy"
    copies = copy_runs(sweep, folder, "*_*seed=*")
    completed = [c for c in copies if '"completed"' in (c / "run.json").read_text()]
    corrupt = Path(shutil.copytree(completed[0], folder / "99_corrupt"))
    (corrupt / "run.json").write_text('{"status": "completed", "metrics": {')  # cut off mid-write
    stale = Path(shutil.copytree(completed[1], folder / "98_stale"))
    edit_record(stale, status="running", pid=dead_pid(), host=socket.gethostname())
    code, out, err = compare_in_process(capsys, folder, "--out", tmp_path / "cmp")
    assert code == 0, err
    assert "Traceback" not in out + err
    runs = pd.read_csv(tmp_path / "cmp" / "runs.csv").set_index("run_name")
    assert runs.loc["99_corrupt", "status"] == "corrupt" and "run.json is corrupt" in runs.loc["99_corrupt", "error"]
    assert (runs["status"] == "running (stale)").sum() == 1
    assert "corrupt" in out and "running (stale)" in out and "3 run(s) did not complete" in out
    summary = pd.read_csv(tmp_path / "cmp" / "summary.csv")
    assert list(summary["n"]) == [len(SEEDS)] * len(STRATEGIES)  # neither copy entered an average


def test_runs_of_different_data_sets_get_separate_tables(sweep, tmp_path, capsys):
    folder = tmp_path / "mixed"
    for copy in copy_runs(sweep, folder / "other", "*seed=0*"):
        edit_record(copy, data__name="other_data")
    copy_runs(sweep, folder / "synthetic")
    code, out, err = compare_in_process(capsys, folder, "--out", tmp_path / "cmp")
    assert code == 0, err
    assert "2 data sets (other_data, synthetic)" in out and "never averaged together" in out
    assert "data set other_data" in out and "data set synthetic" in out
    summary = pd.read_csv(tmp_path / "cmp" / "summary.csv")
    assert sorted(summary["data"].unique()) == ["other_data", "synthetic"]
    assert set(summary[summary["data"] == "synthetic"]["n"]) == {len(SEEDS)}
    assert set(summary[summary["data"] == "other_data"]["n"]) == {1}
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert 'id="summary-other_data"' in page and 'id="summary-synthetic"' in page


def test_nothing_comparable_exits_non_zero_with_one_clear_line(sweep, tmp_path, capsys):
    folder = tmp_path / "all-bad"
    for copy in copy_runs(sweep, folder, "*seed=0*"):
        (copy / "run.json").write_text("not json")
    code, out, err = compare_in_process(capsys, folder)
    assert code == 1 and "nothing to compare: none of the" in err and "corrupt" in out
    assert not (folder / "comparison").exists()


def test_no_runs_and_missing_paths_are_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("compare", str(empty))  # as a user runs it: one line, no traceback
    assert result.returncode == 2 and "no runs (no run.json) under" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    code, _, err = compare_in_process(capsys, tmp_path / "no" / "such" / "sweep")
    assert code == 2 and "no such file or folder" in err and "none of the given paths exist" in err
    code, _, err = compare_in_process(capsys, "--outputs", empty)
    assert code == 2 and "no sweeps with runs under" in err


def test_unknown_group_key_is_named(sweep, capsys):
    code, _, err = compare_in_process(capsys, sweep, "--by", "fusion.no_such_key")
    assert code == 2 and "--by fusion.no_such_key" in err


def test_latest_sweep_skips_empty_sweep_folders(sweep, tmp_path):
    from mmfuse.reporting import latest_sweep

    outputs = tmp_path / "outputs"
    older = outputs / "sweeps" / "2026-01-01_00-00-00_000000"
    copy_runs(sweep, older, "*seed=0*")
    (outputs / "sweeps" / "2099-01-01_00-00-00_000000").mkdir()  # a sweep that never ran a job
    assert latest_sweep(outputs) == older
    assert latest_sweep(tmp_path / "nothing") is None


def test_running_record_of_a_live_process_is_not_stale(sweep, tmp_path):
    from mmfuse.reporting import load_runs

    live, dead = copy_runs(sweep, tmp_path / "live", "*fusion=concat,seed=0*") + copy_runs(
        sweep, tmp_path / "dead", "*fusion=concat,seed=0*"
    )
    edit_record(live, status="running", pid=os.getpid(), host=socket.gethostname())
    edit_record(dead, status="running", pid=dead_pid(), host=socket.gethostname())
    statuses = load_runs([tmp_path / "live", tmp_path / "dead"]).set_index("run_dir")["status"]
    assert statuses[str(live.resolve())] == "running" and statuses[str(dead.resolve())] == "running (stale)"


def doctored_sweep(sweep: Path, dest: Path) -> Path:
    """The sweep's completed runs with made-up test metrics: test/acc a lead too small for 2 seeds,
    test/f1 the same gap on both seeds (no variance to test)."""
    made_up = {
        ("concat", 0): (0.90, 0.90),
        ("concat", 1): (0.95, 0.92),
        ("late", 0): (0.86, 0.80),
        ("late", 1): (0.94, 0.82),
    }
    for run in copy_runs(sweep, dest, "*seed=*"):
        record = json.loads((run / "run.json").read_text())
        if record["status"] != "completed":
            shutil.rmtree(run)
            continue
        acc, f1 = made_up[(record["choices"]["fusion"], record["config"]["seed"])]
        edit_record(run, **{"metrics__test/acc": acc, "metrics__test/f1": f1})
    return dest


def test_correction_untestable_gaps_and_seeds_needed_reach_every_output(sweep, tmp_path, capsys):
    folder = doctored_sweep(sweep, tmp_path / "doctored")
    code, out, err = compare_in_process(capsys, folder, "--out", tmp_path / "cmp", "--metrics", "test/acc", "test/f1")
    assert code == 0, err
    summary = pd.read_csv(tmp_path / "cmp" / "summary.csv").set_index("group")
    late = summary.loc["fusion=late"]
    expected = stats.ttest_rel([0.90, 0.95], [0.86, 0.94])
    assert late["test/acc p_vs_best"] == pytest.approx(expected.pvalue) and not late["test/acc best_lead_significant"]
    assert late["test/acc seeds_needed"] > len(SEEDS) and late["test/acc detectable_gap"] > late["test/acc gap_to_best"]
    assert late["test/f1 test_vs_best"] == UNTESTABLE_PAIRED and pd.isna(late["test/f1 p_vs_best"])
    md = (tmp_path / "cmp" / "summary.md").read_text()
    page = (tmp_path / "cmp" / "report.html").read_text()
    for text in (out, md, page):
        assert "Holm-corrected p" in text and "≈: equal, or too few seeds?" in text
        assert f"needs {int(late['test/acc seeds_needed'])} seeds" in text
        assert "0.100 · untestable with these seeds" in text
    assert "p<0.001" not in out  # test/f1's constant gap is not "p = 0"
    assert "| p raw | p Holm |" in md  # the raw p-value stays in view next to the corrected one

    code, out, err = compare_in_process(capsys, folder, "--out", tmp_path / "none", "--correction", "none")
    assert code == 0, err
    assert "uncorrected p" in out and "not corrected for multiple comparisons" in out
    assert set(pd.read_csv(tmp_path / "none" / "summary.csv")["correction"]) == {"none"}
    with pytest.raises(SystemExit) as stop:
        compare_in_process(capsys, folder, "--correction", "fdr")
    assert stop.value.code == 2 and "invalid choice: 'fdr'" in capsys.readouterr().err


# ---------------------------------------------------------------- statistics on made-up numbers


def made_up_runs(rows: list[tuple[str, int | None, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["group", "seed", "test/acc"]).assign(
        **{"test/loss": lambda d: 1 - d["test/acc"]}
    )


def test_paired_test_where_seeds_match_welch_where_they_do_not_none_for_one_run():
    from mmfuse.reporting.stats import PAIRED, WELCH, summarise_metrics

    runs = made_up_runs(
        [
            ("a", 0, 0.90),
            ("a", 1, 0.92),
            ("a", 2, 0.91),
            ("b", 0, 0.80),
            ("b", 1, 0.83),
            ("b", 2, 0.81),  # same seeds as a: paired
            ("c", 0, 0.85),
            ("c", 5, 0.86),  # other seeds: Welch
            ("d", 0, 0.70),
        ]
    )  # one run: no test
    table = summarise_metrics(runs, ["test/acc", "test/loss"]).set_index(["metric", "group"])
    acc = table.loc["test/acc"]
    assert acc["best"].tolist() == [True, False, False, False]
    assert acc.loc["b", "test_vs_best"] == PAIRED
    assert acc.loc["b", "p_vs_best"] == pytest.approx(stats.ttest_rel([0.90, 0.92, 0.91], [0.80, 0.83, 0.81]).pvalue)
    assert acc.loc["c", "test_vs_best"] == WELCH
    assert acc.loc["c", "p_vs_best"] == pytest.approx(
        stats.ttest_ind([0.90, 0.92, 0.91], [0.85, 0.86], equal_var=False).pvalue
    )
    assert acc.loc["d", "test_vs_best"].startswith("no test") and pd.isna(acc.loc["d", "p_vs_best"])
    assert acc.loc["b", "gap_to_best"] == pytest.approx(0.91 - 0.8133333, abs=1e-6)
    # loss: the lowest mean is best, and the gap is still how far behind a group is
    loss = table.loc["test/loss"]
    assert loss.loc["a", "best"] and loss.loc["b", "gap_to_best"] == pytest.approx(acc.loc["b", "gap_to_best"])
