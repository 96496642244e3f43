"""A user's own configs and code: the config search order, --help, bad folders, extras, plug-in checks and records,
the conformance checks on broken strategies, and `mmfuse check`. (The whole path from a wheel: test_install.py.)"""
from __future__ import annotations

import random
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from conftest import compose_config, run_cli
from mmfuse.configs import config_dir, group_choices, split_user_configs
from mmfuse.errors import UserError
from mmfuse.fusion.conformance import factory_for, modality_sets, run_checks


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user project: conf/ with a new fusion choice and an override of a shipped one, and its module.

    Its package name is unique to the test, so that imports of one test never serve another."""
    package = f"lab_{tmp_path.name.replace('-', '_').lower()}"
    write(tmp_path, {
        f"{package}/__init__.py": "",
        f"{package}/fusion.py": """
            import torch
            from torch import nn


            class MeanOfPresent(nn.Module):
                def __init__(self, in_dims, out_dim=8):
                    super().__init__()
                    self.project = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})
                    self.out_dim = out_dim

                def forward(self, feats, present, tokens=None):
                    z = torch.stack([self.project[m](x) for m, x in feats.items()], 1)
                    w = present.unsqueeze(-1).to(z.dtype)
                    return (z * w).sum(1) / w.sum(1).clamp_min(1.0)


            class SpareParameter(MeanOfPresent):
                def __init__(self, in_dims, out_dim=8):
                    super().__init__(in_dims, out_dim)
                    self.spare = nn.Linear(2, 2)


            class NoOutDim(MeanOfPresent):
                def __init__(self, in_dims):
                    super().__init__(in_dims)
                    del self.out_dim


            class NoPresent(MeanOfPresent):
                def forward(self, feats):
                    return feats
            """,
        "conf/fusion/mean_of_present.yaml": f"""
            # a user's strategy
            name: mean_of_present
            _target_: {package}.fusion.MeanOfPresent
            out_dim: 8
            """,
        "conf/fusion/concat.yaml": """
            # the user's concat: shadows the built-in one
            name: concat
            _target_: mmfuse.fusion.concat.ConcatFusion
            dropout: 0.25
            """,
    })
    monkeypatch.syspath_prepend(str(tmp_path))  # the launch folder, as the command line puts it
    monkeypatch.chdir(tmp_path)
    return tmp_path, package


# --- the user's config folder -----------------------------------------------------------------------------------

def test_the_users_folder_is_searched_first(project, tmp_path):
    root, package = project
    mine = compose_config(["fusion=concat"], tmp_path / "run", user_folders=[root / "conf"])
    assert mine.fusion.dropout == 0.25  # the user's file over the shipped one of the same name
    assert compose_config(["fusion=concat"], tmp_path / "run2").fusion.dropout == 0.0  # without it: the shipped one
    added = compose_config(["fusion=mean_of_present"], tmp_path / "run3", user_folders=[root / "conf"])
    assert added.fusion._target_ == f"{package}.fusion.MeanOfPresent" and added.data.n_samples == 400
    choices = {c.name: c for c in group_choices([root / "conf"])["fusion"]}
    assert choices["mean_of_present"].user and not choices["mean_of_present"].shadows
    assert choices["concat"].shadows and not choices["late"].user


def test_config_dir_and_searchpath_options_are_taken_off_the_command_line(tmp_path):
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    a.mkdir()
    b.mkdir()
    user = split_user_configs(["--config-dir", str(a), "fusion=late", f"hydra.searchpath=[file://{b}]", "-m",
                               f"--config-dir={a}"])
    assert user.folders == (a, b) and user.argv == ("fusion=late", "-m")


@pytest.mark.parametrize("files, argv, message", [
    ({}, ["--config-dir", "nowhere"], "--config-dir nowhere: no such folder {root}/nowhere"),
    ({"conf/fusion/x.yaml": "name: x\n_target_: [a\nout_dim: 3\n"}, ["--config-dir", "conf"],
     "{root}/conf/fusion/x.yaml line 3: not valid YAML"),
    ({}, ["hydra.searchpath=[file://./gone]"], "hydra.searchpath entry file://./gone: no such folder {root}/gone"),
])
def test_a_bad_user_folder_is_one_line_and_exit_2(tmp_path, files, argv, message):
    write(tmp_path, files)
    result = run_cli("train", *argv, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"mmfuse train: error: {message.format(root=tmp_path)}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_help_lists_the_users_choices_and_marks_them(project):
    root, _ = project
    result = run_cli("train", "--config-dir", "conf", "--help", cwd=root)
    assert result.returncode == 0, result.stderr
    fusion = next(line for line in result.stdout.splitlines() if line.startswith("fusion: "))
    assert "concat (yours, over the built-in)" in fusion and "mean_of_present (yours)" in fusion
    assert ", late," in fusion  # the built-in ones too
    assert "dropout: 0.25" in result.stdout  # the composed config is the user's


# --- extras -------------------------------------------------------------------------------------------------------

def test_choices_that_need_an_extra_are_found_through_the_configs_they_pick():
    from mmfuse.extras import needed_by_command_line

    found = needed_by_command_line(["hparams_search=fusion_optuna", "hydra/launcher=slurm", "logger=tensorboard",
                                    "fusion=late,concat", "logger=csv", "trainer.max_epochs=1"], [config_dir()])
    assert found == [("search", "hparams_search=fusion_optuna"), ("cluster", "hydra/launcher=slurm"),
                     ("tensorboard", "logger=tensorboard")]


def test_a_missing_extra_is_named_with_its_install_command(monkeypatch):
    from mmfuse import extras

    monkeypatch.setitem(extras.EXTRAS, "search", ("Hydra's Optuna sweeper", ("no_such_module_xyz",)))
    with pytest.raises(UserError, match=r"hparams_search=x needs Hydra's Optuna sweeper, which is not installed "
                                        r"\(no_such_module_xyz missing\): pip install 'mmfuse\[search\]'") as e:
        extras.require("search", "hparams_search=x")
    assert e.value.code == 2
    extras.require("tensorboard", "logger=tensorboard")  # installed here ([dev] holds every extra)


def test_without_the_sweeper_the_command_line_says_which_extra(tmp_path):
    # an environment without optuna: a finder that refuses it, first on the module search path
    write(tmp_path, {"sitecustomize.py": """
        import sys


        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "optuna":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None


        sys.meta_path.insert(0, NotInstalled())
        """})
    result = run_cli("train", "hparams_search=fusion_optuna", env={"PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}"})
    assert result.returncode == 2 and result.stderr.strip() == (
        "mmfuse train: error: hparams_search=fusion_optuna needs Hydra's Optuna sweeper, which is not installed "
        "(optuna missing): pip install 'mmfuse[search]'"), result.stderr


# --- the user's code: found, checked, recorded -----------------------------------------------------------------------

def test_a_target_that_does_not_import_names_key_target_and_search_path(project):
    from mmfuse.plugins import locate

    root, package = project
    write(root, {f"{package}/broken.py": "def f(:\n    pass\n", f"{package}/needs.py": "import not_installed_xyz\n"})
    with pytest.raises(UserError) as e:
        locate("nolab.fusion.X", "fusion")
    assert str(e.value).startswith("fusion._target_=nolab.fusion.X: no module named 'nolab' on the module search "
                                   f"path (the launch folder, then installed packages): {root}")
    with pytest.raises(UserError, match=rf"{package}.fusion \(.*fusion.py\) has no attribute 'Missing'"):
        locate(f"{package}.fusion.Missing", "fusion")
    with pytest.raises(UserError, match=rf"package {package} \(.*\) has neither a module nor an attribute 'nope'"):
        locate(f"{package}.nope.X", "data")
    with pytest.raises(UserError, match=r"importing .*broken failed \(.*broken.py line 1\): SyntaxError"):
        locate(f"{package}.broken.X", "fusion")
    with pytest.raises(UserError, match=r"importing .*needs failed: ModuleNotFoundError: No module named "
                                        r"'not_installed_xyz'"):
        locate(f"{package}.needs.X", "encoder.image")


def test_the_users_classes_are_checked_against_the_contract_before_any_data(project):
    from mmfuse.plugins import check_data, check_encoder, check_fusion

    _, package = project
    with pytest.raises(UserError, match=r"fusion=x \(.*NoPresent\): forward\(feats\) cannot be called as "
                                        r"forward\(feats, present, tokens=None\)"):
        check_fusion({"name": "x", "_target_": f"{package}.fusion.NoPresent"})
    with pytest.raises(UserError, match=r"cannot be built as MeanOfPresent\(in_dims=\.\.\., width=\.\.\.\)"):
        check_fusion({"name": "x", "_target_": f"{package}.fusion.MeanOfPresent", "width": 3})
    check_fusion({"name": "x", "_target_": f"{package}.fusion.MeanOfPresent", "out_dim": 3})
    with pytest.raises(UserError, match=r"encoder.image \(.*NoPresent\): forward\(self, feats\) cannot be called as "
                                        r"forward\(x, mask\)"):
        check_encoder({"_target_": f"{package}.fusion.NoPresent"}, "encoder.image")
    with pytest.raises(UserError, match=r"data._target_=.*MeanOfPresent lacks \['modalities', 'task', "
                                        r"'num_classes', 'describe', 'fingerprint'.*MultimodalDataModule"):
        check_data({"_target_": f"{package}.fusion.MeanOfPresent"})


def test_a_plain_module_fusion_builds_and_is_checked_as_built(project, tmp_path, monkeypatch):
    from mmfuse.models import build
    from mmfuse.models.build import build_model

    root, package = project
    cfg = compose_config(["fusion=mean_of_present", "data.modalities=[image,tabular]"], tmp_path / "run",
                         user_folders=[root / "conf"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    state = torch.get_rng_state()
    model = build_model(cfg, datamodule)
    built, after = {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()
    # the check runs on a copy with torch's random state put back: the same model and random state as without it
    monkeypatch.setattr(build, "check_plugin_fusion", lambda *args: None)
    torch.set_rng_state(state)
    unchecked = build_model(cfg, datamodule)
    assert torch.equal(after, torch.get_rng_state())
    assert all(torch.equal(built[k], v) for k, v in unchecked.state_dict().items())
    monkeypatch.undo()
    assert model.fusion.out_dim == 8 and model.fusion.wants_tokens is False and model.parameter_counts()["fusion"] > 0
    batch = next(iter(datamodule.train_dataloader()))
    assert model(batch).shape == (len(batch["label"]), datamodule.num_classes)
    for target, message in [("SpareParameter", r"fusion=x \(.*SpareParameter\): parameter\(s\) \['spare.weight', "
                                                r"'spare.bias'\] receive no gradient"),
                            ("NoOutDim", r"has no integer out_dim; set self.out_dim")]:
        cfg.fusion = OmegaConf.create({"name": "x", "_target_": f"{package}.fusion.{target}"})
        with pytest.raises(ValueError, match=message):
            build_model(cfg, datamodule)


def test_the_users_code_is_hashed_and_a_change_is_named(project, tmp_path):
    from mmfuse.lifecycle.reproduce import user_code_changes
    from mmfuse.lifecycle.snapshot import SNAPSHOT
    from mmfuse.plugins import code_changes, plugin_sources

    root, package = project
    cfg = compose_config(["fusion=mean_of_present", "+callbacks.extra._target_=yaml.safe_load"], tmp_path / "run",
                         user_folders=[root / "conf"])
    recorded = plugin_sources(cfg)
    assert set(recorded) == {"fusion", "callbacks.extra"}  # mmfuse's own targets and torch's are not the user's
    assert recorded["fusion"]["path"] == str(root / package) and recorded["fusion"]["files"] == 2
    assert recorded["callbacks.extra"]["distribution"].lower() == "pyyaml" and recorded["callbacks.extra"]["version"]
    assert code_changes(recorded, plugin_sources(cfg)) == []

    run_dir = tmp_path / "run"
    (run_dir / SNAPSHOT).parent.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / SNAPSHOT)
    record = {"plugins": recorded, "config": OmegaConf.to_container(cfg, resolve=True)}
    assert user_code_changes(run_dir, record) == []
    (root / package / "helpers.py").write_text("SCALE = 2\n")  # any file of the package counts
    changes = user_code_changes(run_dir, record)
    assert len(changes) == 1 and changes[0].startswith(f"your code: fusion: {package}.fusion.MeanOfPresent: the source "
                                                       f"in {root / package} changed since the run (sha256 ")
    cfg.fusion._target_ = "gone_package_xyz.Fusion"
    OmegaConf.save(cfg, run_dir / SNAPSHOT)
    with pytest.raises(UserError, match="fusion._target_=gone_package_xyz.Fusion: no module named"):
        user_code_changes(run_dir, record)


def test_the_launch_folder_comes_first_on_the_module_search_path(tmp_path, monkeypatch):
    from mmfuse.cli.process import launch_folder_on_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["/some/bin", *sys.path[1:]])
    assert launch_folder_on_path() and sys.path[0] == str(tmp_path)
    assert not launch_folder_on_path() and sys.path.count(str(tmp_path)) == 1
    assert launch_folder_on_path(str(tmp_path.parent)) and sys.path[0] == str(tmp_path.parent)  # a job elsewhere


# --- the conformance checks find each kind of breakage ---------------------------------------------------------------

class Masked(nn.Module):
    def __init__(self, in_dims, out_dim=4):
        super().__init__()
        self.modalities = list(in_dims)
        self.project = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})
        self.out_dim = out_dim

    def forward(self, feats, present, tokens=None):
        return sum(self.project[m](feats[m]) * present[:, i:i + 1] for i, m in enumerate(self.modalities))


class Leaky(Masked):
    def forward(self, feats, present, tokens=None):
        return sum(self.project[m](feats[m]) for m in self.modalities)


class Unseeded(Masked):
    def __init__(self, in_dims):
        super().__init__(in_dims)
        self.scale = nn.Parameter(torch.tensor(1.0 + random.random()))

    def forward(self, feats, present, tokens=None):
        return super().forward(feats, present) * self.scale


class Branching(Masked):
    def forward(self, feats, present, tokens=None):
        out = super().forward(feats, present)
        return out * 2 if out.sum() > 0 else out  # a Python branch on data: torch.export cannot trace it


class FactorsInAList(Masked):
    def __init__(self, in_dims):
        super().__init__(in_dims)
        self.factors = [torch.zeros(4, requires_grad=True)]


@pytest.mark.parametrize("cls, failing", [
    (Masked, set()),
    (Leaky, {"gradient reaches every parameter", "absent modality changes nothing"}),
    (Unseeded, {"deterministic for a seed"}),
    (Branching, {"exportable (torch.export)"}),
    (FactorsInAList, {"gradient reaches every parameter"}),
])
def test_conformance_checks_catch_each_breakage(cls, failing):
    results = run_checks(factory_for(cls, {}), modality_sets()[:1])
    assert {r.check for r in results if not r.passed} == failing, [(r.check, r.message) for r in results]


def test_mmfuse_check_prints_a_table_and_fails_a_broken_strategy(project, capsys):
    from mmfuse.cli.check import main

    root, package = project
    write(root, {"conf/fusion/spare.yaml": f"name: spare\n_target_: {package}.fusion.SpareParameter\n"})
    assert main(["--config-dir", "conf", "fusion=mean_of_present"]) == 0
    out = capsys.readouterr().out
    assert "fusion=mean_of_present: every check passes on 2, 3 and 4 modalities" in out
    assert main(["--config-dir", "conf", "fusion=spare"]) == 1
    out = capsys.readouterr().out
    assert "fusion=spare: 3 of 15 checks fail" in out and "['spare.weight', 'spare.bias'] receive no gradient" in out
    assert main(["fusion=nope"]) == 2
    assert "mmfuse check: error: " in capsys.readouterr().err


def test_export_names_the_part_it_cannot_trace(project, tmp_path):
    from mmfuse.deploy.export import input_batch, untraceable_part
    from mmfuse.models.build import build_model

    cfg = compose_config(["data.modalities=[image,tabular]"], tmp_path / "run")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    cfg.fusion = OmegaConf.create({"name": "branching", "_target_": f"{__name__}.Branching"})
    model = build_model(cfg, datamodule).eval()
    part = untraceable_part(model, input_batch(model, datamodule, 8))
    assert part.startswith(f"the fusion {__name__}.Branching (torch.export cannot trace it: GuardOnDataDependent"), part
