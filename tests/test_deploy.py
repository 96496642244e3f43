"""`mmfuse export` and `mmfuse predict`: artifacts that load with torch alone, and predictions on real files."""
from __future__ import annotations

import csv
import gzip
import json
import pathlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import SHARED_DATA, compose_config, require_module, run_cli
from mmfuse.deploy.artifact import ARTIFACT_JSON, EXAMPLE, ONNX, PROGRAM, Artifact
from mmfuse.deploy.export import Exportable, export_run
from mmfuse.deploy.predict import predict
from mmfuse.deploy.preprocess import Preprocessor
from mmfuse.errors import UserError
from mmfuse.lifecycle.evaluate import load_model
from mmfuse.lifecycle.snapshot import SNAPSHOT

QUIET = ["callbacks=minimal", "logger=none", "trainer.enable_progress_bar=false", "evaluation.robustness=false"]
needs_shared = pytest.mark.usefixtures("shared_data")  # skipped without ../shared/data, failed under CI


def trained_run(folder: Path, overrides: list[str], tiny: bool = True) -> Path:
    """A run trained in-process, with the config snapshot Hydra would have written."""
    from hydra.core.global_hydra import GlobalHydra

    from mmfuse.train import train

    cfg = compose_config([*overrides, *QUIET], folder, tiny=tiny)
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, folder / SNAPSHOT)
    record = train(cfg)
    GlobalHydra.instance().clear()
    assert record["status"] == "completed"
    return folder


def original_outputs(run_dir: Path, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The checkpoint's own PyTorch model (training code) on the artifact's inputs."""
    record = json.loads((run_dir / "run.json").read_text())
    cfg = OmegaConf.load(run_dir / SNAPSHOT)
    model = load_model(cfg, run_dir / "checkpoints" / "best.ckpt")
    with torch.no_grad():
        return Exportable(model, record["data"]["task"])(inputs)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    # every modality of the synthetic benchmark, the text one through the GRU encoder
    return trained_run(tmp_path_factory.mktemp("deploy") / "runs" / "transformer-s0",
                       ["fusion=transformer", "data.n_samples=300"])


@pytest.fixture(scope="module")
def synthetic_artifact(synthetic_run) -> Path:
    return Path(export_run(synthetic_run)["folder"])


def test_export_loads_with_torch_alone_and_matches_the_checkpoint(synthetic_run, synthetic_artifact):
    meta = json.loads((synthetic_artifact / ARTIFACT_JSON).read_text())
    assert synthetic_artifact.parent == synthetic_run / "export"
    assert meta["checks"]["pt2"]["max_abs_diff"] <= 1e-4 and meta["checks"]["samples"] > 1
    assert [i["name"] for i in meta["inputs"]] == ["present", "image", "text", "text_mask", "audio", "tabular"]
    assert meta["class_names"] == ["0", "1", "2", "3"] and meta["task"] == "multiclass"
    recorded = json.loads((synthetic_run / "run.json").read_text())["exports"]
    assert recorded[-1]["folder"] == str(synthetic_artifact)

    # a fresh interpreter in which mmfuse cannot even be imported
    out = synthetic_artifact / "loaded_outputs.pt"
    script = (
        "import sys; sys.modules['mmfuse'] = None\n"
        "import torch\n"
        f"program = torch.export.load({str(synthetic_artifact / PROGRAM)!r}).module()\n"
        f"example = torch.load({str(synthetic_artifact / EXAMPLE)!r})\n"
        "outputs = program(example['inputs'])\n"
        "assert 'pytorch_lightning' not in sys.modules and 'hydra' not in sys.modules\n"
        f"torch.save(outputs, {str(out)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = torch.load(out)
    example = torch.load(synthetic_artifact / EXAMPLE)
    original = original_outputs(synthetic_run, example["inputs"])
    assert loaded.shape == (4, 4)
    assert torch.allclose(loaded.sum(1), torch.ones(4), atol=1e-5)  # probabilities
    assert (loaded - original).abs().max() <= 1e-4
    out.unlink()


def test_export_handles_absent_modalities_and_any_batch_size(synthetic_run, synthetic_artifact):
    example = torch.load(synthetic_artifact / EXAMPLE)
    inputs = {k: v[:3].clone() for k, v in example["inputs"].items()}
    inputs["present"][0, 1] = False  # text missing in sample 0
    inputs["present"][2, :2] = False  # image and text missing in sample 2
    artifact = Artifact(synthetic_artifact)
    assert (artifact(inputs) - original_outputs(synthetic_run, inputs)).abs().max() <= 1e-4


def test_onnx_export_is_checked_with_onnxruntime(synthetic_run, tmp_path):
    require_module("onnxscript", "onnxscript (ONNX export, the [onnx] extra)")
    folder = tmp_path / "onnx_artifact"
    result = export_run(synthetic_run, fmt="onnx", out=folder)
    assert (folder / ONNX).is_file() and not (folder / PROGRAM).exists()
    assert result["checks"]["onnx"]["max_abs_diff"] <= 1e-4
    import onnxruntime as ort

    example = torch.load(folder / EXAMPLE)
    session = ort.InferenceSession(str(folder / ONNX), providers=["CPUExecutionProvider"])
    feed = {i.name: v.numpy() for i, v in zip(session.get_inputs(), example["inputs"].values())}
    assert np.abs(session.run(None, feed)[0] - example["outputs"].numpy()).max() <= 1e-4


def test_predict_on_arrays_matches_the_model(synthetic_run, synthetic_artifact, tmp_path):
    example = torch.load(synthetic_artifact / EXAMPLE)
    for m in ("image", "audio", "tabular"):
        np.save(tmp_path / f"{m}.npy", example["inputs"][m][0].numpy())
    files = [f"{m}={tmp_path / f'{m}.npy'}" for m in ("image", "audio", "tabular")]
    artifact, names, probs = predict(str(synthetic_run), files, None)
    inputs = {k: v[:1].clone() for k, v in example["inputs"].items()}
    inputs["present"][:, 1] = False  # no text given
    inputs["text"].zero_(), inputs["text_mask"].zero_()
    assert probs.shape == (1, 4) and (probs - original_outputs(synthetic_run, inputs)).abs().max() <= 1e-4


# --- real files -------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


@pytest.fixture(scope="module")
def avmnist_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deploy_av") / "runs" / "concat-s0"
    return trained_run(
        folder,
        [
            "data=avmnist_real",
            f"paths.data_dir={SHARED_DATA}",
            "data.sizes=[300,60,60]",
            f"data.cache_dir={folder.parent.parent / 'cache'}",
            "fusion=concat",
            "trainer.max_epochs=2",
        ],
        tiny=False,
    )


@needs_shared
def test_predict_on_real_png_and_wav_files_reproduces_the_test_tensors(avmnist_run, tmp_path):
    """A test sample's digit saved as PNG and its FSDD recording, through `mmfuse predict`: the model's output on the
    data set's tensors."""
    from hydra.utils import instantiate
    from PIL import Image

    cfg = OmegaConf.load(avmnist_run / SNAPSHOT)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    test = dm.splits["test"]
    rows = []
    for j in range(3):
        image = test.tensors["image"][j, 0] * 0.3081 + 0.1307  # back to the [0, 1] pixels MNIST stores
        pixels = (image * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(tmp_path / f"digit{j}.png")
        rows.append(
            {
                "id": f"s{j}",
                "image": f"digit{j}.png",
                "audio": str(SHARED_DATA / "fsdd" / "recordings" / dm.recordings[test.recording_index[j]]),
            }
        )
    with open(tmp_path / "inputs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "image", "audio"])
        writer.writeheader()
        writer.writerows(rows)

    # preprocessing of real files gives back the training tensors
    artifact_dir = Path(export_run(avmnist_run)["folder"])
    pre = Preprocessor(Artifact(artifact_dir).meta)
    batch = pre.batch([{"image": tmp_path / r["image"], "audio": Path(r["audio"])} for r in rows], ["t"] * 3)
    assert (batch["image"] - test.tensors["image"][:3]).abs().max() <= 1e-5
    assert (batch["audio"] - test.tensors["audio"][:3]).abs().max() <= 1e-4

    out = tmp_path / "predictions.csv"
    done = run_cli("predict", str(avmnist_run), "--input", str(tmp_path / "inputs.csv"), "--output", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "predictions of concat-s0" in done.stdout
    got = list(csv.DictReader(out.read_text().splitlines()))
    reference = original_outputs(
        avmnist_run,
        {
            "present": torch.ones(3, 2, dtype=torch.bool),
            "image": test.tensors["image"][:3],
            "audio": test.tensors["audio"][:3],
        },
    )
    assert [r["sample"] for r in got] == ["s0", "s1", "s2"]
    probs = torch.tensor([[float(r[f"p_{d}"]) for d in range(10)] for r in got])
    assert (probs - reference).abs().max() <= 1e-4
    assert [r["prediction"] for r in got] == [str(int(i)) for i in reference.argmax(1)]

    # two files on the command line make one sample; the audio alone is a sample with the image absent
    done = run_cli("predict", str(artifact_dir), str(tmp_path / "digit0.png"), rows[0]["audio"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"│ {str(int(reference[0].argmax()))} " in done.stdout.replace("  ", " ")

    # a WAV handed to the image input, a text file to a model without text: one line each, nothing written
    wrong = tmp_path / "wrong.csv"
    for args, message in [
        ([f"image={rows[0]['audio']}"], "is an audio file, but modality 'image' expects an image file"),
        ([str(tmp_path / "inputs.csv")], "which this model does not take; its inputs are image"),
    ]:
        done = run_cli("predict", str(artifact_dir), *args, "--output", str(wrong))
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not wrong.exists()


@needs_shared
def test_predict_from_a_manifest_run_uses_its_vocabulary_and_statistics(tmp_path):
    """A model trained on a manifest (image, audio, text, numbers): predict on the same rows gives the test tensors'
    outputs."""
    from hydra.utils import instantiate

    from test_manifest import SMALL_AUDIO, write_csv

    rows_dir = tmp_path / "files"
    rows_dir.mkdir()
    images = read_idx(SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SHARED_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    from PIL import Image

    rows = []
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for i in range(40):
        digit = int(labels[i])
        Image.fromarray(images[i]).save(rows_dir / f"{i}.png")
        rows.append(
            {
                "id": i,
                "image": f"{i}.png",
                "audio": str(SHARED_DATA / "fsdd" / "recordings" / f"{digit}_theo_{10 + i % 30}.wav"),
                "caption": f"someone says {words[digit]}",
                "duration": 0.1 * (i % 7),
                "label": words[digit],
            }
        )
    manifest = write_csv(rows_dir, rows, "train.csv")
    run_dir = trained_run(
        tmp_path / "runs" / "late-s0",
        [
            "data=manifest",
            f"data.path={manifest}",
            *[f"data.{k}={v}" for k, v in SMALL_AUDIO.items()],
            "data.batch_size=16",
            "fusion=late",
            "trainer.max_epochs=1",
        ],
        tiny=False,
    )
    artifact, names, probs = predict(str(run_dir), [], manifest)
    assert names[:2] == ["0", "1"] and probs.shape == (40, len(artifact.class_names))
    dm = instantiate(OmegaConf.load(run_dir / SNAPSHOT).data)
    dm.setup("fit")
    test = dm.splits["test"]
    # which manifest rows ended in the test split: match them by their tabular value and text ids
    pre = Preprocessor(artifact.meta)
    batch = pre.batch(
        [
            {
                "image": rows_dir / r["image"],
                "audio": Path(r["audio"]),
                "text": r["caption"],
                "tabular": [r["duration"]],
            }
            for r in rows
        ],
        [f"row {i}" for i in range(40)],
    )
    for j in range(len(test)):
        match = [
            i
            for i in range(40)
            if torch.equal(batch["text"][i], test.tensors["text"][j])
            and (batch["image"][i] - test.tensors["image"][j]).abs().max() <= 1e-5
        ]
        assert match, f"test sample {j} matches no preprocessed manifest row"
        i = match[0]
        for m in ("audio", "tabular"):
            assert (batch[m][i] - test.tensors[m][j]).abs().max() <= 1e-4, m
    assert artifact.meta["preprocessing"]["text"]["vocabulary"][:2] == ["<pad>", "<unk>"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_self_check_above_the_tolerance_writes_nothing(synthetic_run, monkeypatch, capsys):
    """`mmfuse export` (in process: the same argv parsing and exit status) with an exported program that is off by
    1e-3 from the checkpoint's model: refused with exit 1, and the run folder is byte for byte as it was."""
    from mmfuse.cli.export import main
    from mmfuse.deploy import export

    class Perturbed(Artifact):
        def __call__(self, inputs):
            return super().__call__(inputs) + 1e-3

    before = files_of(synthetic_run)
    monkeypatch.setattr(export, "Artifact", Perturbed)
    assert main([str(synthetic_run)]) == 1
    err = capsys.readouterr().err
    assert "self-check failed: max |exported - PyTorch| {'pt2': 0.001" in err
    assert "exceeds --tolerance 0.0001; nothing was written" in err and len(err.strip().splitlines()) == 1
    assert files_of(synthetic_run) == before  # no artifact, no temp folder left, run.json untouched


def test_onnx_without_onnxruntime_is_refused_unless_no_check_says_so(synthetic_run, monkeypatch, tmp_path, capsys):
    from mmfuse.cli.export import main

    require_module("onnxscript", "onnxscript (ONNX export, the [onnx] extra)")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as in an environment without onnxruntime
    before = files_of(synthetic_run)
    assert main([str(synthetic_run), "--format", "onnx", "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "checks model.onnx against PyTorch with onnxruntime, which is not installed" in err and "--no-check" in err
    assert not (tmp_path / "refused").exists() and files_of(synthetic_run) == before

    assert main([str(synthetic_run), "--format", "onnx", "--out", str(tmp_path / "unchecked"), "--no-check"]) == 0
    assert "model.onnx: NOT CHECKED (--no-check: written without running it in onnxruntime)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "unchecked" / ARTIFACT_JSON).read_text())
    assert meta["checks"]["onnx"] == {
        "file": ONNX,
        "checked": False,
        "reason": "--no-check: written without running it in onnxruntime",
    }
    assert (tmp_path / "unchecked" / ONNX).is_file()


# --- bad input --------------------------------------------------------------------------


def test_bad_runs_and_artifacts_are_refused_without_writing(synthetic_run, synthetic_artifact, tmp_path):
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(UserError, match="is not a run folder"):
        export_run(tmp_path / "not_a_run")
    with pytest.raises(UserError, match="already exists; choose a new folder"):
        export_run(synthetic_run, out=synthetic_artifact)
    with pytest.raises(UserError, match="neither an export artifact"):
        predict(str(tmp_path / "not_a_run"), ["x.png"], None)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ARTIFACT_JSON).write_text((synthetic_artifact / ARTIFACT_JSON).read_text())
    (broken / PROGRAM).write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot load the exported program"):
        Artifact(broken)
    with pytest.raises(UserError, match="has shape"):
        np.save(tmp_path / "bad.npy", np.zeros((3, 3), dtype=np.float32))
        predict(str(synthetic_artifact), [f"image={tmp_path / 'bad.npy'}"], None)
    exports = sorted((synthetic_run / "export").iterdir())
    assert exports == [synthetic_artifact]

    done = run_cli(
        "predict", str(synthetic_artifact), f"image={tmp_path / 'bad.npy'}", "--output", str(tmp_path / "bad.npy")
    )
    assert done.returncode == 2 and "already exists; choose a new file" in done.stderr


def test_checkpoints_holding_more_than_weights_need_trust(synthetic_run, tmp_path):
    import shutil

    run = tmp_path / "copied"
    shutil.copytree(synthetic_run, run, ignore=shutil.ignore_patterns("export"))
    ckpt_path = run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    ckpt["origin"] = pathlib.PurePosixPath("/somewhere/else")  # a pickled object: not plain weights
    torch.save(ckpt, ckpt_path)
    with pytest.raises(UserError, match="pass --trust-checkpoint"):
        export_run(run)
    assert not (run / "export").exists()
    cfg = OmegaConf.load(run / SNAPSHOT)
    assert load_model(cfg, ckpt_path, trust=True).modality_names == ["image", "text", "audio", "tabular"]

    # training from such a checkpoint (ckpt_path=) is refused before any work, unless trusted
    from mmfuse.train.checks import check_start_checkpoint

    cfg = compose_config([f"ckpt_path={ckpt_path}"], tmp_path / "new_run")
    with pytest.raises(
        ValueError, match=r"ckpt_path=.*best.ckpt cannot be loaded as weights only.*trust_checkpoint=true"
    ):
        check_start_checkpoint(cfg)
    cfg.trust_checkpoint = True
    check_start_checkpoint(cfg)
    cfg.ckpt_path = str(tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*missing.ckpt: no such checkpoint file"):
        check_start_checkpoint(cfg)
