"""mmfuse as people install it: a wheel in a fresh virtual environment, and docs/EXTENDING.md's project run with it.

The wheel is built from a copy of the checkout (`pip wheel --no-deps --no-build-isolation`, nothing downloaded)
and installed, not editable, into a new venv that reuses this environment's installed dependencies (a .pth file
naming its site-packages; `--system-site-packages` would reach the base interpreter's instead). The user project
is every `file=` block of docs/EXTENDING.md written into an empty folder; every `console` block's commands run
there with that venv's `mmfuse` and `python`, each expected output line (`...`: anything) must appear, and the
exit status must be the block's (`exit=N`, default 0).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DOC = ROOT / "docs" / "EXTENDING.md"
PROJECT = "myproject"  # the doc's error lines name the project folder


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)
    exit: int = 0


def parse_doc(text: str) -> tuple[dict[str, str], list[Command]]:
    """The doc's files (`lang file=PATH` blocks) and commands (`console` blocks: `$ cmd`, then expected lines)."""
    files, commands = {}, []
    for info, body in re.findall(r"^```([^\n]*)\n(.*?)^```$", text, flags=re.S | re.M):
        words = info.split()
        options = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        if "file" in options:
            files[options["file"]] = body
        elif words and words[0] == "console":
            for line in body.splitlines():
                if line.startswith("$ "):
                    commands.append(Command(line[2:], exit=int(options.get("exit", 0))))
                elif line.strip() and line.strip() != "...":
                    commands[-1].expected.append(line)
    return files, commands


def pattern(expected: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def site_packages(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def venv_over_this_one(path: Path) -> Path:
    """A fresh venv (no pip) that sees this environment's installed packages through a .pth file."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    # a plain path line: the folder's own .pth files (this environment's mmfuse, editable) are not run
    (Path(site_packages(python)) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def pip(python: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def checkout_copy(tmp: Path) -> Path:
    """What the wheel is built from, copied, so that the build leaves nothing in the checkout."""
    copy = tmp / "source"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "conf"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    return copy


def user_env(venv_python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MMFUSE_CONFIG_DIR", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{venv_python.parent}{os.pathsep}{env.get('PATH', '')}", "PYTHONUNBUFFERED": "1",
            "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "",
            # tables as wide as docs/EXTENDING.md shows them (a pipe's default); COLUMNS from the test's own terminal
            # (or an xdist worker) would wrap their cells differently
            "COLUMNS": "160"}


def record_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_every_package_of_the_source_tree_goes_into_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {p.parent.relative_to(ROOT / "src").as_posix().replace("/", ".")
             for p in (ROOT / "src").rglob("__init__.py")}
    assert not found - listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert "mmfuse.conf" in listed and (ROOT / "conf" / "__init__.py").is_file()


def test_an_editable_install_reads_the_checkouts_conf(tmp_path):
    source = checkout_copy(tmp_path)
    python = venv_over_this_one(tmp_path / "venv")
    pip(python, "--no-build-isolation", "-e", str(source))
    probe = ("import importlib.resources as r, mmfuse, mmfuse.configs as c; "
             "print(mmfuse.__file__); print(c.config_dir()); print(r.files('mmfuse.conf'))")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run([str(python), "-c", probe], cwd=empty, env=user_env(python), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(source / "src" / "mmfuse" / "__init__.py"), str(source / "conf"),
                                  str(source / "conf")]
    shown = subprocess.run([str(python.parent / "mmfuse"), "train", "--help"], cwd=empty, env=user_env(python),
                           capture_output=True, text=True)
    assert shown.returncode == 0 and "fusion: attention, concat" in shown.stdout, shown.stderr


def test_the_extending_walkthrough_runs_from_a_wheel(tmp_path):
    source = checkout_copy(tmp_path)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ".",
                            "-w", str(tmp_path / "dist")], cwd=source, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("mmfuse-*.whl"))
    python = venv_over_this_one(tmp_path / "venv")
    pip(python, "--no-index", str(wheel))
    installed = Path(site_packages(python)) / "mmfuse"
    assert (installed / "conf" / "train.yaml").is_file() and not (installed / "conf" / "train.yaml").is_symlink()

    project = tmp_path / PROJECT
    project.mkdir()
    files, commands = parse_doc(DOC.read_text())
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    assert len(commands) >= 8, "EXTENDING.md lost its commands"
    outputs = {}
    for command in commands:
        done = subprocess.run(["bash", "-c", command.line], cwd=project, env=user_env(python), capture_output=True,
                              text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == command.exit, f"$ {command.line}\nexit {done.returncode}\n{output[-4000:]}"
        lines = output.splitlines()
        for expected in command.expected:
            assert any(pattern(expected).search(line) for line in lines), \
                f"$ {command.line}\nexpected a line like: {expected}\n--- output ---\n{output[-4000:]}"
        outputs[command.line] = output

    # the runs were made by the wheel's mmfuse, with its shipped configs after the user's
    sweep, broken = sorted((project / "outputs" / "sweeps").iterdir())
    plugin_run = sweep / "0_fusion=gated_sum"
    sources = (plugin_run / ".hydra" / "hydra.yaml").read_text()
    assert sources.index(str(project / "conf")) < sources.index(str(installed / "conf")), sources

    # the plug-in's run holds every record a built-in's does
    record = json.loads((plugin_run / "run.json").read_text())
    assert record["status"] == "completed" and record["config"]["fusion"]["_target_"] == "mylab.fusion.GatedSum"
    assert record["params"]["fusion"] > 0 and record["params"]["encoder/text"] > 0
    assert record["complexity"]["flops_per_sample"] > 0 and record["robustness"]["auc"]
    assert record["choices"]["fusion"] == "gated_sum" and record["choices"]["callbacks"] == "stop_at_target"
    assert len(record["plugins"]["fusion"]["sha256"]) == 64  # reproduce can tell when the user's code changed
    from mmfuse.tracking.wandb_offline import read_offline_run

    tags = read_offline_run(next((plugin_run / "wandb").glob("offline-run-*")))["tags"]
    assert tags == ["gated_sum", "manifest", "fusion"], tags
    reproduction = next((project / "outputs" / "reproductions").iterdir())
    assert json.loads((reproduction / "run.json").read_text())["reproduced_from"]["run_dir"] == str(plugin_run)
    assert len(record_of(plugin_run)["exports"]) == 1
    signals = next((project / "outputs" / "runs").glob("*_gated_sum-s0"))
    assert json.loads((signals / "run.json").read_text())["data"]["modalities"]["signal"]["kind"] == "signal"

    # a broken plug-in stops its job in one line, before any training
    failed = [c for c in commands if c.exit]
    assert len(failed) == 1
    errors = [line for line in outputs[failed[0].line].splitlines() if ": error: " in line]
    assert len(errors) == 3, errors
    for job in sorted(broken.iterdir()):
        if (job / "run.json").is_file():
            job_record = json.loads((job / "run.json").read_text())
            assert job_record["status"] == "failed" and not job_record.get("history"), job
        assert not list(job.glob("checkpoints/*.ckpt")), job
