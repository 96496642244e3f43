"""AV-MNIST from the real MNIST test split and FSDD recordings in ../shared/data."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from mmfuse.data.audio import read_wav
from mmfuse.data.avmnist_real import AVMNISTRealDataModule, read_idx

pytestmark = pytest.mark.usefixtures("shared_data")  # skipped without ../shared/data, failed under CI
MNIST, FSDD = SHARED_DATA / "mnist", SHARED_DATA / "fsdd"


def make(tmp_path, **kw) -> AVMNISTRealDataModule:
    dm = AVMNISTRealDataModule(
        str(kw.pop("mnist", MNIST)),
        str(kw.pop("fsdd", FSDD)),
        cache_dir=str(tmp_path / "cache"),
        **{"sizes": (600, 200, 300), **kw},
    )
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def dm(tmp_path_factory):
    return make(tmp_path_factory.mktemp("avmnist"))


def test_pairs_share_the_digit_and_splits_never_share_a_recording(dm):
    names = dm.recordings
    heard = {}
    for split, ds in dm.splits.items():
        idx = ds.recording_index
        digits = np.array([int(names[i].split("_")[0]) for i in idx])
        assert (digits == ds.tensors["label"].numpy()).all(), split
        heard[split] = {names[i] for i in idx}
        indices = {int(names[i].rsplit("_", 1)[1].split(".")[0]) for i in idx}
        assert indices <= (
            {0, 1, 2, 3, 4} if split == "test" else set(range(5, 10)) if split == "val" else set(range(10, 50))
        )
    assert not heard["train"] & heard["test"] and not heard["train"] & heard["val"] and not heard["val"] & heard["test"]
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 600, "val": 200, "test": 300}


def test_images_do_not_overlap_between_splits(dm):
    flat = {s: {bytes(x.numpy().round(3).tobytes()) for x in ds.tensors["image"]} for s, ds in dm.splits.items()}
    assert not flat["train"] & flat["test"] and not flat["train"] & flat["val"]


def test_shapes_specs_and_standardised_audio(dm):
    b = dm.splits["train"][list(range(8))]
    assert b["image"].shape == (8, 1, 28, 28) and b["audio"].shape == (8, *dm.modalities["audio"].shape)
    train_audio = dm.splits["train"].tensors["audio"]
    assert abs(float(train_audio.mean())) < 0.3 and 0.7 < float(train_audio.std()) < 1.3
    assert torch.isfinite(train_audio).all()


def test_deterministic_pairing_for_a_seed(tmp_path, dm):
    again = make(tmp_path)
    other = make(tmp_path, data_seed=1)
    assert again.fingerprint() == dm.fingerprint() != other.fingerprint()


def test_cache_is_reused_and_invalidated_by_parameters_and_inputs(tmp_path):
    fsdd = tmp_path / "fsdd"
    shutil.copytree(FSDD / "recordings", fsdd / "recordings")
    make(tmp_path, fsdd=fsdd)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    make(tmp_path, fsdd=fsdd)  # same inputs and parameters: the same cache file
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    make(tmp_path, fsdd=fsdd, n_mels=32)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    victim = fsdd / "recordings" / "3_theo_20.wav"
    victim.write_bytes(victim.read_bytes()[:-200] + bytes(200))  # same length, other samples
    make(tmp_path, fsdd=fsdd)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


def test_truncated_wav_is_named_or_skipped_and_counted(tmp_path):
    fsdd = tmp_path / "fsdd"
    shutil.copytree(FSDD / "recordings", fsdd / "recordings")
    bad = fsdd / "recordings" / "7_jackson_30.wav"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(ValueError, match="7_jackson_30.wav"):
        make(tmp_path, fsdd=fsdd)
    dm = make(tmp_path, fsdd=fsdd, on_error="skip")
    assert dm.skipped == {"unreadable_wav": 1}
    assert "7_jackson_30.wav" not in {dm.recordings[i] for ds in dm.splits.values() for i in ds.recording_index}


def test_missing_files_say_where_they_were_looked_for_and_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.*data.download=true"):
        make(tmp_path, mnist=tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=r"FSDD.*nothing"):
        make(tmp_path, fsdd=tmp_path / "nothing")


def test_corrupt_idx_and_too_many_images_are_clear_errors(tmp_path):
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for f in MNIST.iterdir():
        shutil.copy(f, mnist / f.name)
    with pytest.raises(ValueError, match="adds up to 20000"):
        make(tmp_path, mnist=mnist, sizes=(10000, 5000, 5000))
    import gzip

    images = mnist / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:5000]))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: truncated"):
        make(tmp_path, mnist=mnist)


def test_readers_on_real_files():
    x = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000,) and np.bincount(x).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    wave, rate = read_wav(FSDD / "recordings" / "0_george_0.wav")
    assert rate == 8000 and wave.dtype == torch.float32 and 0 < float(wave.abs().max()) <= 1.0


def test_trains_end_to_end(cfg_factory):
    from mmfuse.train import train

    cfg = cfg_factory(
        "data=avmnist_real",
        f"paths.data_dir={SHARED_DATA}",
        "data.sizes=[300,100,100]",
        "logger=none",
        "fusion=late",
        "trainer.max_epochs=1",
        "callbacks=minimal",
        tiny=False,
    )
    rec = train(cfg)
    assert rec["status"] == "completed" and rec["data"]["name"] == "avmnist_real"
    assert rec["metrics"]["test/acc"] > 0.2  # above chance (0.1) after one epoch on 300 pairs


def test_skipped_samples_are_recorded_in_the_run_record(cfg_factory, tmp_path):
    from mmfuse.train import train

    fsdd = tmp_path / "fsdd"
    shutil.copytree(FSDD / "recordings", fsdd / "recordings")
    bad = fsdd / "recordings" / "2_nicolas_12.wav"
    bad.write_bytes(bad.read_bytes()[:20])
    cfg = cfg_factory(
        "data=avmnist_real",
        f"data.mnist_dir={MNIST}",
        f"data.fsdd_dir={fsdd}",
        "data.on_error=skip",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.sizes=[200,50,50]",
        "logger=none",
        "fusion=unimodal_audio",
        "trainer.max_epochs=1",
        "callbacks=minimal",
        tiny=False,
    )
    rec = train(cfg)
    assert rec["status"] == "completed" and rec["data_skipped"] == {"unreadable_wav": 1}
