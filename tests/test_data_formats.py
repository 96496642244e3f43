"""The benchmark file formats (AV-MNIST npy, MM-IMDb hdf5, MOSI/MOSEI pickle), the sequence encoder, acc2, spectrograms.

Tiny files are written in exactly the layouts the benchmarks ship. `tiny_data_overrides`
writes one small data set per data config and returns the overrides that point each
config at it (reusable by other tests, e.g. the config-group test).
"""
from __future__ import annotations

import math
import pickle
import wave
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mmfuse.data.affect import AffectDataModule
from mmfuse.data.audio import fix_length, log_spectrogram, mel_filterbank, read_wav, spectrogram_frames
from mmfuse.data.avmnist import AVMNISTDataModule
from mmfuse.data.mmimdb import MMIMDbDataModule
from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.sequence import SequenceGRU
from mmfuse.models.metrics import SignAccuracy, build_metrics
from mmfuse.train import train

# compose overrides that make a run tiny (the shared TINY list sets data.n_samples, which these configs lack)
SMALL = ["trainer.max_epochs=1", "callbacks=minimal", "logger=none", "trainer.enable_progress_bar=false"]


# --- writers: the benchmarks' own layouts ------------------------------------------------
def write_avmnist(root: Path, n_train: int = 40, n_test: int = 20, image_layout: str = "flat", seed: int = 0) -> Path:
    """MultiBench AV-MNIST: image/{split}_data.npy, audio/{split}_data.npy, {split}_labels.npy."""
    rng = np.random.default_rng(seed)
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 + 2 * labels, 5:20] = 255  # a bar whose row encodes the digit
        audio = rng.integers(0, 255, (n, 112, 112)).astype(np.float32)
        np.save(root / "image" / f"{split}_data.npy", images.reshape(n, 784) if image_layout == "flat" else images)
        np.save(root / "audio" / f"{split}_data.npy", audio)
        np.save(root / f"{split}_labels.npy", labels.astype(np.int64))
    return root


def write_mmimdb(
    path: Path, n: int = 48, classes: int = 23, text_dim: int = 300, image_dim: int = 4096, seed: int = 0
) -> Path:
    """MM-IMDb multimodal_imdb.hdf5 with features, vgg_features, genres."""
    rng = np.random.default_rng(seed)
    genres = (rng.random((n, classes)) < 0.15).astype(np.int8)
    genres[np.arange(n), rng.integers(0, classes, n)] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["features"] = (rng.normal(size=(n, text_dim)) + genres[:, :1]).astype(np.float32)
        f["vgg_features"] = rng.random((n, image_dim)).astype(np.float32)
        f["genres"] = genres
        f["imdb_ids"] = np.arange(n)
    return path


def _sequences(rng, n: int, steps: int, dim: int) -> np.ndarray:
    """(n, steps, dim) features zero-padded at the front, as the MOSI/MOSEI pickles are."""
    x = rng.normal(size=(n, steps, dim)).astype(np.float32)
    lengths = rng.integers(2, steps + 1, n)
    for i, length in enumerate(lengths):
        x[i, : steps - length] = 0
    return x


def write_affect(
    path: Path, sizes=(("train", 40), ("valid", 12), ("test", 12)), steps: int = 10, seed: int = 0
) -> Path:
    """MOSI-style pickle: {'train'|'valid'|'test': {'vision','audio','text','labels','id'}}; labels (N, 1, 1)."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in sizes:
        labels = rng.uniform(-3, 3, (n, 1, 1)).astype(np.float32)
        text = _sequences(rng, n, steps, 6)
        text[:, -1, 0] = labels[:, 0, 0]  # the last word carries the sentiment
        data[split] = {
            "vision": _sequences(rng, n, steps, 5),
            "audio": _sequences(rng, n, steps, 4),
            "text": text,
            "labels": labels,
            "id": np.arange(n),
        }
    data["train"]["audio"][0, -1, 1] = -np.inf  # as real MOSI audio features
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path


def write_wav(path: Path, signal: np.ndarray, rate: int) -> None:
    """16-bit PCM mono WAV with the standard library."""
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def write_synthetic_manifest(root: Path, n: int = 24, seed: int = 0) -> Path:
    """A small CSV manifest of generated PNGs and WAVs (no shared data needed)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "wav").mkdir(exist_ok=True)
    lines = ["image,audio,text,size,label"]
    for i in range(n):
        label = ["cat", "dog"][i % 2]
        Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        t = np.arange(2000) / 8000
        write_wav(root / "wav" / f"{i}.wav", 0.5 * np.sin(2 * np.pi * (300 + 400 * (i % 2)) * t), 8000)
        lines.append(f"img/{i}.png,wav/{i}.wav,a {label} says hello,{rng.normal():.3f},{label}")
    path = root / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_data_overrides(root: Path) -> dict[str, list[str]]:
    """Write a tiny data set for each file-based data config; return the overrides that load it.

    Use as `cfg_factory(f"data={name}", *overrides[name], tiny=False)`.
    """
    avmnist = write_avmnist(root / "avmnist")
    mmimdb = write_mmimdb(root / "mmimdb" / "multimodal_imdb.hdf5")
    affect = write_affect(root / "affect" / "mosi.pkl")
    manifest = write_synthetic_manifest(root / "manifest")
    return {
        "avmnist": [f"data.data_dir={avmnist}", "data.val_size=10", "data.batch_size=16"],
        "mmimdb": [
            f"data.path={mmimdb}",
            "data.splits.train=[0,32]",
            "data.splits.val=[32,40]",
            "data.splits.test=[40,48]",
            "data.batch_size=16",
        ],
        "affect": [f"data.path={affect}", "data.batch_size=16"],
        "manifest": [
            f"data.path={manifest}",
            "data.image_size=12",
            "data.sample_rate=8000",
            "data.audio_seconds=0.25",
            "data.n_fft=128",
            "data.hop=64",
            "data.n_mels=16",
            "data.split=[0.5,0.25,0.25]",
            "data.batch_size=8",
        ],
    }


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> dict[str, list[str]]:
    return tiny_data_overrides(tmp_path_factory.mktemp("tiny_data"))


# --- AV-MNIST ---------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["flat", "square"])
def test_avmnist_layout_shapes_specs_and_validation_tail(tmp_path, layout):
    root = write_avmnist(tmp_path / "avmnist", image_layout=layout)
    dm = AVMNISTDataModule(str(root), val_size=10, batch_size=8)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 30, "val": 10, "test": 20}
    assert dm.modalities["image"] == ModalitySpec("image", (1, 28, 28))
    assert dm.modalities["audio"].kind == "audio" and dm.modalities["audio"].shape == (1, 112, 112)
    labels = np.load(root / "train_labels.npy")
    assert dm.splits["val"].tensors["label"].tolist() == labels[-10:].tolist()  # the last samples, as MultiBench
    image = np.load(root / "image" / "train_data.npy").reshape(-1, 1, 28, 28)
    assert torch.allclose(dm.splits["train"].tensors["image"], torch.from_numpy(image[:30] / 255).float())
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 1, 28, 28) and batch["audio"].shape == (8, 1, 112, 112)
    assert batch["audio"].max() <= 1.0 and batch["present"].all() and batch["label"].dtype == torch.long
    assert dm.skipped == {}


def test_avmnist_bad_inputs_name_the_file(tmp_path):
    root = write_avmnist(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match=r"AV-MNIST folder not found: .*nowhere"):
        AVMNISTDataModule(str(tmp_path / "nowhere")).setup()
    (root / "audio" / "test_data.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"audio/test_data\.npy"):
        AVMNISTDataModule(str(root), val_size=10).setup()

    root = write_avmnist(tmp_path / "b")
    np.save(root / "audio" / "train_data.npy", np.zeros((40, 100, 112), dtype=np.float32))
    with pytest.raises(ValueError, match=r"audio/train_data\.npy has shape \(40, 100, 112\); expected \(N, 112, 112\)"):
        AVMNISTDataModule(str(root), val_size=10).setup()

    root = write_avmnist(tmp_path / "c")
    (root / "image" / "test_data.npy").write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match=r"cannot read AV-MNIST image data .*image/test_data\.npy"):
        AVMNISTDataModule(str(root), val_size=10).setup()

    root = write_avmnist(tmp_path / "d")
    np.save(root / "test_labels.npy", np.zeros(19, dtype=np.int64))
    with pytest.raises(ValueError, match=r"disagree on the number of samples"):
        AVMNISTDataModule(str(root), val_size=10).setup()

    with pytest.raises(ValueError, match=r"data.val_size=40 leaves no training samples"):
        AVMNISTDataModule(str(write_avmnist(tmp_path / "e")), val_size=40).setup()


def test_avmnist_bad_labels_raise_or_are_skipped_and_counted(tmp_path):
    root = write_avmnist(tmp_path / "a")
    labels = np.load(root / "train_labels.npy")
    labels[[3, 7]] = [12, -1]
    np.save(root / "train_labels.npy", labels)
    with pytest.raises(ValueError, match=r"train_labels\.npy: sample 3 has label 12; expected an integer digit 0-9"):
        AVMNISTDataModule(str(root), val_size=10).setup()
    dm = AVMNISTDataModule(str(root), val_size=10, on_error="skip")
    dm.setup()
    assert dm.skipped == {"bad_label": 2}
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 38
    assert dm.splits["train"].tensors["label"].max() < 10


# --- MM-IMDb ----------------------------------------------------------------------------
def test_mmimdb_reads_index_splits_as_multilabel(tmp_path):
    path = write_mmimdb(tmp_path / "multimodal_imdb.hdf5")
    dm = MMIMDbDataModule(str(path), splits={"train": [0, 32], "val": [32, 40], "test": [40, 48]}, batch_size=16)
    dm.setup()
    assert dm.task == "multilabel" and dm.num_classes == 23 and len(dm.class_names) == 23
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 32, "val": 8, "test": 8}
    assert dm.modalities == {"text": ModalitySpec("tabular", (300,)), "image": ModalitySpec("tabular", (4096,))}
    with h5py.File(path) as f:
        genres = f["genres"][()]
    assert dm.splits["test"].tensors["label"].tolist() == genres[40:48].tolist()  # rows [40, 48), in order
    train_text = dm.splits["train"].tensors["text"]
    assert train_text.mean(0).abs().max() < 1e-4  # standardised with training statistics
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (16, 4096) and batch["label"].shape == (16, 23)
    metrics = build_metrics(dm.task, dm.num_classes)
    assert {"f1", "f1_macro"} <= set(metrics.keys())


def test_mmimdb_bad_inputs_name_file_and_key(tmp_path):
    path = write_mmimdb(tmp_path / "m.hdf5")
    with h5py.File(path, "a") as f:
        del f["vgg_features"]
    with pytest.raises(
        ValueError,
        match=r"m\.hdf5 has no dataset 'vgg_features' \(for image\); it has \['features', 'genres', 'imdb_ids'\]",
    ):
        MMIMDbDataModule(str(path), splits={"train": [0, 32], "val": [32, 40], "test": [40, 48]}).setup()
    with pytest.raises(FileNotFoundError, match=r"MM-IMDb file not found: .*missing\.hdf5"):
        MMIMDbDataModule(str(tmp_path / "missing.hdf5")).setup()
    path = write_mmimdb(tmp_path / "n.hdf5")
    with pytest.raises(ValueError, match=r"data.splits.test=\[40, 60\) runs past the 48 samples"):
        MMIMDbDataModule(str(path), splits={"train": [0, 32], "val": [32, 40], "test": [40, 60]}).setup()
    (tmp_path / "broken.hdf5").write_bytes(b"\x89HDF garbage")
    with pytest.raises(ValueError, match=r"cannot read .*broken\.hdf5: expected an HDF5 file"):
        MMIMDbDataModule(str(tmp_path / "broken.hdf5")).setup()


def test_mmimdb_non_finite_rows_raise_or_are_skipped(tmp_path):
    path = write_mmimdb(tmp_path / "m.hdf5")
    with h5py.File(path, "a") as f:
        f["features"][33, 5] = np.nan
    splits = {"train": [0, 32], "val": [32, 40], "test": [40, 48]}
    with pytest.raises(ValueError, match=r"'features' row 33 holds NaN"):
        MMIMDbDataModule(str(path), splits=splits).setup()
    dm = MMIMDbDataModule(str(path), splits=splits, on_error="skip")
    dm.setup()
    assert dm.skipped == {"non_finite": 1} and len(dm.splits["val"]) == 7


# --- affect (MOSI/MOSEI pickles) ---------------------------------------------------------
def test_affect_regression_sequences_masks_and_repairs(tmp_path):
    path = write_affect(tmp_path / "mosi.pkl")
    dm = AffectDataModule(str(path), batch_size=8)
    dm.setup()
    assert dm.task == "regression" and dm.num_classes == 1
    assert dm.modalities["vision"] == ModalitySpec("sequence", (10, 5), has_mask=True)
    assert [s.kind for s in dm.modalities.values()] == ["sequence"] * 3
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 40, "val": 12, "test": 12}
    with open(path, "rb") as f:
        raw = pickle.load(f)
    t = dm.splits["test"].tensors
    assert torch.allclose(t["label"], torch.from_numpy(raw["test"]["labels"].reshape(-1)))
    assert torch.equal(t["text_mask"], torch.from_numpy((raw["test"]["text"] != 0).any(-1)))
    assert not t["text_mask"][:, 0].all() and t["text_mask"][:, -1].all()  # padded at the front
    assert torch.isfinite(dm.splits["train"].tensors["audio"]).all() and dm.replaced == {"train/audio/non_finite": 1}
    batch = next(iter(dm.train_dataloader()))
    assert (
        batch["audio"].shape == (8, 10, 4)
        and batch["audio_mask"].shape == (8, 10)
        and batch["label"].dtype == torch.float32
    )
    assert {"mae", "mse", "corr", "acc2"} <= set(build_metrics("regression", 1).keys())


@pytest.mark.parametrize("num_classes", [2, 7])
def test_affect_classification_view_bins_the_scores(tmp_path, num_classes):
    path = write_affect(tmp_path / "mosi.pkl")
    dm = AffectDataModule(str(path), task="multiclass", num_classes=num_classes)
    dm.setup()
    with open(path, "rb") as f:
        y = pickle.load(f)["train"]["labels"].reshape(-1)
    expected = (y >= 0).astype(int) if num_classes == 2 else np.round(np.clip(y, -3, 3)).astype(int) + 3
    assert dm.splits["train"].tensors["label"].tolist() == expected.tolist()
    assert dm.num_classes == num_classes == len(dm.class_names)


def test_affect_empty_modalities_absent_or_skipped(tmp_path):
    path = write_affect(tmp_path / "mosi.pkl")
    with open(path, "rb") as f:
        data = pickle.load(f)
    data["train"]["vision"][2] = 0
    for m in ("vision", "audio", "text"):
        data["train"][m][5] = 0  # nothing observed at all
    with open(path, "wb") as f:
        pickle.dump(data, f)
    dm = AffectDataModule(str(path))
    dm.setup()
    assert dm.skipped == {"empty_sample": 1} and len(dm.splits["train"]) == 39
    assert dm.splits["train"].tensors["present"][2].tolist() == [False, True, True]
    dm = AffectDataModule(str(path), empty_modality="skip")
    dm.setup()
    assert dm.skipped == {"empty_sample": 1, "empty_vision": 1} and len(dm.splits["train"]) == 38


def test_affect_bad_inputs_name_file_split_and_key(tmp_path):
    path = write_affect(tmp_path / "mosi.pkl")
    with open(path, "rb") as f:
        data = pickle.load(f)
    del data["valid"]["audio"]
    with open(tmp_path / "a.pkl", "wb") as f:
        pickle.dump(data, f)
    with pytest.raises(ValueError, match=r"a\.pkl: split 'valid' has no key 'audio'"):
        AffectDataModule(str(tmp_path / "a.pkl")).setup()
    with open(tmp_path / "b.pkl", "wb") as f:
        pickle.dump({"train": {}, "test": {}}, f)
    with pytest.raises(ValueError, match=r"b\.pkl has no split 'valid'"):
        AffectDataModule(str(tmp_path / "b.pkl")).setup()
    with open(path, "rb") as f:
        data = pickle.load(f)
    data["test"]["vision"] = data["test"]["vision"][:, :, 0]
    with open(tmp_path / "c.pkl", "wb") as f:
        pickle.dump(data, f)
    with pytest.raises(ValueError, match=r"c\.pkl: 'test/vision' has shape \(12, 10\); expected \(N, T, d\)"):
        AffectDataModule(str(tmp_path / "c.pkl")).setup()
    (tmp_path / "d.pkl").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"cannot read .*d\.pkl: expected a pickle"):
        AffectDataModule(str(tmp_path / "d.pkl")).setup()
    with pytest.raises(FileNotFoundError, match=r"affect pickle not found: .*nope\.pkl"):
        AffectDataModule(str(tmp_path / "nope.pkl")).setup()

    with open(path, "rb") as f:
        data = pickle.load(f)
    data["train"]["labels"][4] = np.nan
    with open(tmp_path / "e.pkl", "wb") as f:
        pickle.dump(data, f)
    with pytest.raises(ValueError, match=r"e\.pkl: 'train/labels' sample 4 is nan; expected a finite score"):
        AffectDataModule(str(tmp_path / "e.pkl")).setup()
    dm = AffectDataModule(str(tmp_path / "e.pkl"), on_error="skip")
    dm.setup()
    assert dm.skipped == {"bad_label": 1} and len(dm.splits["train"]) == 39


def test_sign_accuracy_leaves_out_zero_targets():
    metric = SignAccuracy()
    metric.update(torch.tensor([0.5, -0.2, 0.3, 1.0, -1.0]), torch.tensor([1.0, -2.0, 0.0, -0.5, -3.0]))
    assert metric.compute().item() == pytest.approx(3 / 4)
    metric.reset()
    metric.update(torch.tensor([1.0]), torch.tensor([0.0]))
    assert math.isnan(metric.compute().item())


# --- the sequence encoder -----------------------------------------------------------------
def test_sequence_gru_reads_only_masked_steps_wherever_they_are():
    torch.manual_seed(0)
    enc = SequenceGRU(ModalitySpec("sequence", (6, 3), has_mask=True), out_dim=8, proj_dim=4, hidden=5).eval()
    x = torch.randn(4, 6, 3)
    lengths = torch.tensor([6, 3, 1, 0])
    front = torch.arange(6)[None, :] >= 6 - lengths[:, None]  # real steps at the end (front padding)
    back = torch.arange(6)[None, :] < lengths[:, None]
    x_front = torch.where(front[..., None], x, torch.zeros(()))
    x_back = torch.zeros_like(x)
    for i, n in enumerate(lengths.tolist()):
        x_back[i, :n] = x_front[i, 6 - n :]
    out = enc(x_front, front)
    assert out.shape == (4, 8)
    assert torch.allclose(out[:3], enc(x_back, back)[:3], atol=1e-6)
    noisy = torch.where(front[..., None], x_front, torch.randn_like(x))  # padding values must not matter
    assert torch.allclose(out, enc(noisy, front), atol=1e-6)
    tokens, mask = enc.tokens(x_front, front)
    assert tokens.shape == (4, 6, 8) and mask.sum(1).tolist() == lengths.tolist()
    pooled, tokens_again, _ = enc.encode(x_front, front)  # one pass: the pooled state and the tokens
    assert torch.allclose(pooled, out, atol=1e-6) and torch.allclose(tokens_again, tokens)
    with pytest.raises(ValueError, match="kind"):
        SequenceGRU(ModalitySpec("tabular", (6,)))


# --- audio features -------------------------------------------------------------------------
def test_log_mel_spectrogram_shapes_and_a_tone_lands_in_its_band(tmp_path):
    rate = 8000
    t = torch.arange(4000) / rate
    tone = torch.sin(2 * math.pi * 1000 * t)
    spec = log_spectrogram(torch.stack([tone, torch.zeros(4000)])[:, None], rate, n_fft=256, hop=64, n_mels=32)
    assert spec.shape == (2, 1, 32, spectrogram_frames(4000, 64))
    fb = mel_filterbank(256, rate, 32)
    assert fb.shape == (32, 129) and fb.min() >= 0 and fb.max() <= 1.0001
    band = spec[0, 0].mean(-1).argmax().item()
    centre_hz = fb[band].argmax().item() * rate / 256
    assert abs(centre_hz - 1000) < 150
    assert torch.isfinite(spec).all() and spec[1].max() < spec[0].max()  # silence sits at log(eps)
    linear = log_spectrogram(tone, rate, n_fft=256, hop=64, n_mels=None)
    assert linear.shape == (129, 63)

    write_wav(tmp_path / "tone.wav", tone.numpy(), rate)
    wave16k, sr = read_wav(tmp_path / "tone.wav", 16000)
    assert sr == 16000 and abs(len(wave16k) - 8000) <= 1
    assert fix_length(wave16k, 100).shape == (100,) and fix_length(wave16k, 9000)[-1000:].abs().max() == 0
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    with pytest.raises(ValueError, match=r"cannot read audio file .*broken\.wav"):
        read_wav(tmp_path / "broken.wav")


# --- end to end through the compose API ----------------------------------------------------
@pytest.mark.parametrize(
    "name, extra, metrics",
    [
        ("avmnist", ["fusion=concat"], ["test/acc", "test/f1"]),
        ("mmimdb", ["fusion=late"], ["test/f1", "test/f1_macro"]),
        ("affect", ["fusion=concat"], ["test/mae", "test/mse", "test/corr", "test/acc2"]),
        ("affect", ["fusion=transformer", "data.task=multiclass", "data.num_classes=7"], ["test/acc"]),
    ],
    ids=["avmnist", "mmimdb", "affect-regression", "affect-7class"],
)
def test_one_epoch_end_to_end(cfg_factory, tiny_data, name, extra, metrics):
    cfg = cfg_factory(f"data={name}", *tiny_data[name], *SMALL, *extra, tiny=False)
    record = train(cfg)
    assert record["status"] == "completed"
    for key in metrics:
        assert key in record["metrics"] and math.isfinite(record["metrics"][key]), key
    assert record["data"]["name"] == name
    kinds = {m["kind"] for m in record["data"]["modalities"].values()}
    assert kinds == {"avmnist": {"image", "audio"}, "mmimdb": {"tabular"}, "affect": {"sequence"}}[name]
