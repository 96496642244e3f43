"""Defaults that fit real data: AV-MNIST files from ../shared/data, strided first stages for large inputs only,
and a data set's own learning rate and encoder settings (conf/data_defaults/), the synthetic defaults unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF, SHARED_DATA, run_cli
from mmfuse.data.avmnist import AVMNISTDataModule
from mmfuse.data.avmnist_files import write_avmnist_files
from mmfuse.data.avmnist_real import read_idx
from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.audio import AudioCNN
from mmfuse.encoders.image import ImageCNN, first_stride
from mmfuse.lifecycle.snapshot import SNAPSHOT, run_config
from mmfuse.models.build import build_model

MNIST, FSDD = SHARED_DATA / "mnist", SHARED_DATA / "fsdd"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("avmnist")
    return {variant: write_avmnist_files(root / variant, MNIST, FSDD, n_train=40, n_test=20, hard=variant == "hard")
            for variant in ("clean", "hard")}


# --- the generator ------------------------------------------------------------------------------
def test_generated_files_pair_each_digit_with_a_recording_of_the_same_digit(files):
    root = files["clean"]
    sources = json.loads((root / "sources.json").read_text())
    t10k = read_idx(next(MNIST.glob("t10k-images*"))).reshape(-1, 784)
    t10k_labels = read_idx(next(MNIST.glob("t10k-labels*")))
    for split, n in (("train", 40), ("test", 20)):
        image = np.load(root / "image" / f"{split}_data.npy")
        audio = np.load(root / "audio" / f"{split}_data.npy")
        labels = np.load(root / f"{split}_labels.npy")
        assert image.shape == (n, 784) and image.dtype == np.uint8
        assert audio.shape == (n, 112, 112) and audio.dtype == np.uint8
        assert labels.shape == (n,) and set(labels.tolist()) <= set(range(10))
        index, heard = np.array(sources[split]["mnist_t10k_index"]), sources[split]["fsdd_file"]
        np.testing.assert_array_equal(image, t10k[index])  # the clean variant keeps the digits as they are
        np.testing.assert_array_equal(labels, t10k_labels[index])
        assert [int(f.split("_")[0]) for f in heard] == labels.tolist()  # FSDD files are {digit}_{speaker}_{index}.wav
        # FSDD's own split: recordings 0-4 are heard only by test images
        assert all((int(f.split("_")[2][:-4]) < 5) == (split == "test") for f in heard)
        first = {}
        for row, f in zip(audio, heard):  # one recording, one spectrogram
            np.testing.assert_array_equal(row, first.setdefault(f, row))
        assert audio.std() > 10  # a spectrogram, not a constant
    train = set(sources["train"]["mnist_t10k_index"])
    assert not train & set(sources["test"]["mnist_t10k_index"])


def test_hard_variant_keeps_few_image_components_and_adds_noise_to_the_same_pairs(files):
    clean, hard = (json.loads((files[v] / "sources.json").read_text()) for v in ("clean", "hard"))
    assert clean["train"] == hard["train"] and clean["test"] == hard["test"]  # same digits, same recordings
    images = np.load(files["hard"] / "image" / "train_data.npy").astype(np.float64) / 255
    energy = np.linalg.svd(images - images.mean(0), compute_uv=False) ** 2
    # 4 principal components hold (up to clipping to [0, 255] and rounding) all the variance; of MNIST's, about 29%
    assert energy[:4].sum() > 0.95 * energy.sum()
    audio_clean = np.load(files["clean"] / "audio" / "train_data.npy").astype(np.float64)
    audio_hard = np.load(files["hard"] / "audio" / "train_data.npy").astype(np.float64)
    assert np.abs(audio_hard - audio_clean).mean() > 10
    # white noise fills the silence: the quiet share of each spectrogram shrinks
    assert (audio_hard < 64).mean() < 0.5 * (audio_clean < 64).mean()


def test_generator_refuses_more_samples_than_mnist_has(tmp_path):
    with pytest.raises(ValueError, match="more than the 10000 MNIST images"):
        write_avmnist_files(tmp_path, MNIST, FSDD, n_train=9000, n_test=2000)


def test_data_avmnist_loads_generated_files(files, cfg_factory):
    root = files["clean"]
    cfg = cfg_factory("data=avmnist", f"data.data_dir={root}", "data.val_size=10", tiny=False)
    dm = instantiate(cfg.data)
    dm.setup()
    assert isinstance(dm, AVMNISTDataModule)
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [30, 10, 20]
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (20, 1, 28, 28) and batch["audio"].shape == (20, 1, 112, 112)
    np.testing.assert_array_equal(batch["label"].numpy(), np.load(root / "test_labels.npy"))
    expected = np.load(root / "audio" / "test_data.npy")[:, None].astype(np.float32) / 255
    np.testing.assert_allclose(batch["audio"].numpy(), expected)
    model = build_model(cfg, dm)
    assert model.encoders["audio"].stride == 2 and model.encoders["image"].stride == 1
    assert model(batch).shape == (20, 10)


# --- large-input downsampling --------------------------------------------------------------------
@pytest.mark.parametrize("spatial, stride", [
    ((112, 112), 2),   # AV-MNIST spectrograms
    ((224, 224), 4),
    ((28, 28), 1),     # MNIST digits
    ((16, 16), 1),     # synthetic images
    ((40, 63), 1),     # avmnist_real log-mels
    ((33, 17), 1),     # synthetic spectrograms
    ((256,), 1),       # synthetic waveforms
    ((8000,), 2),      # a second of 8 kHz audio
])
def test_auto_downsampling_acts_only_above_64x64_positions(spatial, stride):
    assert first_stride(spatial, "auto") == stride
    assert first_stride(spatial, 1) == 1 and first_stride(spatial, 3) == 3


@pytest.mark.parametrize("bad", [0, -2, "yes", 1.5, True])
def test_bad_downsample_is_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match="downsample"):
        AudioCNN(ModalitySpec("audio", (1, 112, 112)), downsample=bad)


def test_downsampled_encoder_has_the_same_parameters_and_a_coarser_map():
    spec = ModalitySpec("audio", (1, 112, 112))
    full, strided = AudioCNN(spec), AudioCNN(spec, downsample="auto")
    assert full.stride == 1 and strided.stride == 2  # the constructor's default is today's (older snapshots)
    assert [p.shape for p in full.parameters()] == [p.shape for p in strided.parameters()]
    x = torch.randn(2, 1, 112, 112)
    assert full.encode(x)[1].shape == (2, 14 * 14, 64) and strided.encode(x)[1].shape == (2, 7 * 7, 64)
    assert strided(x).shape == (2, 64)


def test_synthetic_default_encoders_are_unchanged(cfg_factory):
    """Parameter counts and weight shapes recorded at 2e85504 (before `downsample` existed)."""
    cfg = cfg_factory()
    assert cfg.encoder.image.downsample == "auto" and cfg.encoder.audio.downsample == "auto"
    dm = instantiate(cfg.data)
    dm.setup()
    model = build_model(cfg, dm)
    assert model.parameter_counts() == {"total": 199300, "trainable": 199300, "encoder/image": 72608,
                                        "encoder/text": 47936, "encoder/audio": 39840, "encoder/tabular": 5248,
                                        "fusion": 256, "head": 33412}
    shapes = {m: [tuple(w.shape) for k, w in model.encoders[m].state_dict().items()
                  if k.endswith("weight") and w.dim() > 1] for m in ("image", "audio")}
    assert shapes == {"image": [(16, 1, 3, 3), (32, 16, 3, 3), (64, 32), (64, 1024)],
                      "audio": [(16, 1, 3), (32, 16, 3), (32, 32, 3), (64, 32), (64, 512)]}
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]
    assert convs and all(set(c.stride) == {1} for c in convs)

    cfg = cfg_factory("data.audio_representation=spectrogram")
    dm = instantiate(cfg.data)
    dm.setup()
    audio = build_model(cfg, dm).encoders["audio"]
    assert dm.modalities["audio"].shape == (1, 33, 17) and audio.stride == 1
    assert sum(p.numel() for p in audio.parameters()) == 32768
    assert AudioCNN(ModalitySpec("audio", (1, 40, 63)), downsample="auto").stride == 1  # avmnist_real
    assert ImageCNN(ModalitySpec("image", (1, 28, 28)), downsample="auto").stride == 1


# --- a data set's own learning rate (and encoder settings): conf/data_defaults/<data>.yaml ------------------


def test_a_data_set_sets_its_own_defaults_and_the_command_line_wins(cfg_factory, files):
    generic = cfg_factory()  # synthetic: no data_defaults file, model/default.yaml and encoder/*/cnn.yaml as they are
    assert generic.model.optimizer.lr == OmegaConf.load(CONF / "model" / "default.yaml").optimizer.lr
    generic_channels = OmegaConf.load(CONF / "encoder" / "audio" / "cnn.yaml").channels
    assert list(generic.encoder.audio.channels) == list(generic_channels)
    own = OmegaConf.load(CONF / "data_defaults" / "avmnist.yaml")
    assert list(own.encoder.audio.channels) != list(generic.encoder.audio.channels)

    cfg = cfg_factory("data=avmnist", f"data.data_dir={files['clean']}", "data.val_size=10", tiny=False)
    assert cfg.model.optimizer.lr == own.model.optimizer.lr
    assert list(cfg.encoder.audio.channels) == list(own.encoder.audio.channels)
    assert list(cfg.model.head.hidden) == [] != list(generic.model.head.hidden)  # a linear head on AV-MNIST
    # nothing unknown reaches the DataModule
    assert set(cfg.data) == set(OmegaConf.load(CONF / "data" / "avmnist.yaml"))
    instantiate(cfg.data)
    assert cfg.model.optimizer.weight_decay == generic.model.optimizer.weight_decay  # the rest stays generic

    cfg = cfg_factory("data=avmnist", "model.optimizer.lr=0.5", "encoder.audio.channels=[8]", tiny=False)
    assert cfg.model.optimizer.lr == 0.5 and list(cfg.encoder.audio.channels) == [8]
    cfg = cfg_factory("data=avmnist", "~data_defaults", tiny=False)
    assert cfg.model.optimizer.lr == generic.model.optimizer.lr
    assert list(cfg.encoder.audio.channels) == list(generic.encoder.audio.channels)


def test_cfg_job_shows_the_data_sets_defaults():
    result = run_cli("train", "data=avmnist", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    shown, own = OmegaConf.create(result.stdout), OmegaConf.load(CONF / "data_defaults" / "avmnist.yaml")
    assert shown.model.optimizer.lr == own.model.optimizer.lr
    assert shown.encoder.audio.channels == own.encoder.audio.channels


def test_an_older_snapshot_keeps_its_learning_rate_and_full_resolution_encoders(cfg_factory, tmp_path):
    """A run recorded before these defaults: its snapshot holds lr 0.003, batch 128, audio channels [16, 32, 32] and
    encoders without `downsample`; rebuilt from it, the run is what it was."""
    cfg = cfg_factory("data=avmnist", tiny=False)
    old = OmegaConf.to_container(cfg)
    old["model"]["optimizer"]["lr"] = 0.003
    old["data"]["batch_size"] = 128
    old["encoder"]["audio"]["channels"] = [16, 32, 32]
    for kind in ("image", "audio"):
        del old["encoder"][kind]["downsample"]
    run = tmp_path / "old-run"
    (run / SNAPSHOT).parent.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(old), run / SNAPSHOT)
    rebuilt = run_config(run, {"config": {}})
    assert rebuilt.model.optimizer.lr == 0.003 and rebuilt.data.batch_size == 128
    audio = instantiate(rebuilt.encoder.audio, spec=ModalitySpec("audio", (1, 112, 112)))
    assert audio.stride == 1 and sum(p.numel() for p in audio.parameters()) == 81920  # as built at 2e85504
