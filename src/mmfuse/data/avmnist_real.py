"""AV-MNIST from real data: a handwritten MNIST digit paired with a spoken FSDD digit of the same class.

Images: MNIST IDX files, the layout `torchvision.datasets.MNIST` reads from
`raw/` (gzipped or not). With the training split present, train/val come
from it and test from t10k; with only the t10k split (as in ../shared/data),
train/val/test are drawn from its 10,000 images without overlap.

Audio: Free Spoken Digit Dataset WAV files `{digit}_{speaker}_{index}.wav`
(8 kHz mono). FSDD's own split: recordings 0-4 are test; 5-9 serve as
validation and 10-49 as training, so no recording is shared between splits.
Each image is paired with a recording of the same digit from its split's
pool, deterministically for `data_seed`.

Audio features are log-mel spectrograms of fixed shape computed with
torch.stft (1 s, zero-padded or cropped), standardised with training
statistics. They are computed once and cached in `cache_dir` as `.npz`
keyed by a hash of the WAV files and every feature parameter, so a second
run loads in well under a second and a change of inputs or parameters
invalidates the cache.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mmfuse.data.audio import log_spectrogram, read_wav
from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.spec import ModalitySpec

log = logging.getLogger(__name__)

FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
MNIST_FILES = {
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FEATURES_VERSION = 2  # part of the cache key: bump when the feature code changes
FSDD_ARCHIVE = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.tar.gz"


# --- readers -----------------------------------------------------------------------
def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / "raw" / stem, folder / "raw" / f"{stem}.gz",
                      folder / "MNIST" / "raw" / stem, folder / "MNIST" / "raw" / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzipped or not, as a numpy array."""
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(
            f"{path}: truncated or padded IDX file: {len(raw)} bytes, expected {expected} for shape {dims}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


# --- the data module ----------------------------------------------------------------
class AVMNISTRealDataModule(MultimodalDataModule):
    name = "avmnist_real"
    task = "multiclass"
    num_classes = 10
    class_names = [str(i) for i in range(10)]

    def __init__(
        self,
        mnist_dir: str,
        fsdd_dir: str,
        cache_dir: str | None = None,
        download: bool = False,
        sizes: Sequence[int] = (6000, 1000, 3000),
        image_noise: float = 0.0,
        image_occlusion: float = 0.0,
        audio_noise: float = 0.0,
        audio_seconds: float = 1.0,
        n_fft: int = 256,
        hop: int = 128,
        n_mels: int = 40,
        data_seed: int = 0,
        **settings: Any,  # batch sizes, pin_memory, seed, on_error: see MultimodalDataModule
    ):
        super().__init__(**settings)
        if len(sizes) != 3 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"data.sizes must be three positive counts [train, val, test], got {list(sizes)}")
        for key, value in (
            ("image_noise", image_noise),
            ("image_occlusion", image_occlusion),
            ("audio_noise", audio_noise),
        ):
            if value < 0 or (key == "image_occlusion" and value > 1):
                raise ValueError(f"data.{key}={value}: expected {'[0, 1]' if key == 'image_occlusion' else '>= 0'}")
        self.mnist_dir, self.fsdd_dir = Path(mnist_dir), Path(fsdd_dir)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.download = download
        self.sizes = tuple(int(s) for s in sizes)
        self.image_noise, self.image_occlusion, self.audio_noise = image_noise, image_occlusion, audio_noise
        self.audio_seconds, self.n_fft, self.hop, self.n_mels = audio_seconds, n_fft, hop, n_mels
        self.data_seed = data_seed
        self.sample_rate = 8000
        self.frames = int(round(audio_seconds * self.sample_rate)) // hop + 1

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        return {
            "image": ModalitySpec("image", (1, 28, 28)),
            "audio": ModalitySpec(
                "audio",
                (1, self.n_mels, self.frames),
                sample_rate=self.sample_rate,
                extra={"n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels, "seconds": self.audio_seconds},
            ),
        }

    def fingerprint_params(self) -> dict[str, Any]:
        keys = (
            "sizes",
            "image_noise",
            "image_occlusion",
            "audio_noise",
            "audio_seconds",
            "n_fft",
            "hop",
            "n_mels",
            "data_seed",
        )
        return {"name": self.name, **{k: getattr(self, k) for k in keys}}

    # --- inputs ------------------------------------------------------------------------
    def preprocessing(self) -> dict[str, dict[str, Any]]:
        self.setup()
        return {
            "image": {"reader": "image", "size": 28, "channels": 1, "mean": [MNIST_MEAN], "std": [MNIST_STD]},
            "audio": {
                "reader": "audio",
                "sample_rate": self.sample_rate,
                "seconds": self.audio_seconds,
                "features": "logmel",
                "n_fft": self.n_fft,
                "hop": self.hop,
                "n_mels": self.n_mels,
                **self.audio_stats,
            },
        }

    def _missing_error(self, what: str, looked: list[Path]) -> FileNotFoundError:
        return FileNotFoundError(
            f"{what} not found; looked for {', '.join(str(p) for p in looked)}. Either put the files there "
            f"(data.mnist_dir / data.fsdd_dir; ../shared/data holds both on these machines: "
            f"paths.data_dir=../shared/data) "
            f"or set data.download=true on a machine with a network"
        )

    def _mnist(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self.download:
            self._download_mnist()
        out = {}
        for split, (images, labels) in MNIST_FILES.items():
            ip, lp = _idx_path(self.mnist_dir, images), _idx_path(self.mnist_dir, labels)
            if ip and lp:
                x, y = read_idx(ip), read_idx(lp)
                if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),):
                    raise ValueError(
                        f"{ip}: expected (N, 28, 28) images with N labels in {lp}, got {x.shape} and {y.shape}"
                    )
                out[split] = (x, y)
        if "test" not in out:
            raise self._missing_error(
                "MNIST t10k IDX files",
                [self.mnist_dir / f"{MNIST_FILES['test'][0]}[.gz]", self.mnist_dir / f"{MNIST_FILES['test'][1]}[.gz]"],
            )
        return out

    def _download_mnist(self) -> None:
        from torchvision.datasets import MNIST

        try:
            MNIST(str(self.mnist_dir), train=True, download=True)
            MNIST(str(self.mnist_dir), train=False, download=True)
        except Exception as e:  # noqa: BLE001 - no network: say what to do instead
            raise RuntimeError(
                f"data.download=true but MNIST could not be downloaded into {self.mnist_dir} ({e})"
            ) from None

    def _recordings(self) -> list[tuple[Path, int, str, int]]:
        folder = self.fsdd_dir / "recordings" if (self.fsdd_dir / "recordings").is_dir() else self.fsdd_dir
        if self.download and not any(folder.glob("*.wav")):
            self._download_fsdd()
            folder = self.fsdd_dir / "recordings"
        found = []
        for p in sorted(folder.glob("*.wav")):
            m = FSDD_NAME.match(p.name)
            if m:
                found.append((p, int(m.group(1)), m.group(2), int(m.group(3))))
        if not found:
            raise self._missing_error(
                "FSDD recordings {digit}_{speaker}_{index}.wav", [self.fsdd_dir / "recordings", self.fsdd_dir]
            )
        return found

    def _download_fsdd(self) -> None:
        import tarfile
        import tempfile

        from torch.hub import download_url_to_file

        try:
            with tempfile.TemporaryDirectory() as tmp:
                archive = Path(tmp) / "fsdd.tar.gz"
                download_url_to_file(FSDD_ARCHIVE, str(archive), progress=False)
                target = self.fsdd_dir / "recordings"
                target.mkdir(parents=True, exist_ok=True)
                with tarfile.open(archive) as tar:
                    for member in tar.getmembers():
                        if "/recordings/" in member.name and member.name.endswith(".wav"):
                            member.name = Path(member.name).name
                            tar.extract(member, target, filter="data")
        except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
            raise RuntimeError(
                f"data.download=true but FSDD could not be downloaded from {FSDD_ARCHIVE} ({e})"
            ) from None

    # --- audio features (cached) ------------------------------------------------------------
    def _cache_key(self, files: list[Path]) -> str:
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
        params = {
            k: getattr(self, k)
            for k in ("audio_seconds", "n_fft", "hop", "n_mels", "audio_noise", "data_seed", "on_error")
        }
        params["version"] = FEATURES_VERSION
        h.update(json.dumps(params, sort_keys=True).encode())
        return h.hexdigest()[:20]

    def _audio_features(self, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, n_mels, frames) log-mel features and an (N,) ok-mask, from the cache when it is valid."""
        key = self._cache_key(files)
        cache = self.cache_dir / f"fsdd_logmel_{key}.npz" if self.cache_dir else None
        if cache is not None and cache.is_file():
            with np.load(cache) as z:
                features, ok = z["features"], z["ok"]
            # only an on_error=skip run (part of the key) caches unreadable files: count them as that run did
            if not ok.all():
                self.errors.count("unreadable_wav", int((~ok).sum()))
            return features, ok
        length = int(round(self.audio_seconds * self.sample_rate))
        waves = np.zeros((len(files), length), dtype=np.float32)
        ok = np.ones(len(files), dtype=bool)
        for i, p in enumerate(files):
            try:
                x, rate = read_wav(p)
                if rate != self.sample_rate:
                    raise ValueError(f"{p}: sample rate {rate} Hz, expected {self.sample_rate} Hz (FSDD)")
            except ValueError as e:
                self.errors("unreadable_wav", str(e))
                ok[i] = False
                continue
            waves[i, : min(length, len(x))] = x[:length].numpy()
        wave_t = torch.from_numpy(waves)
        if self.audio_noise > 0:
            g = torch.Generator().manual_seed(self.data_seed + 11)
            rms = wave_t.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-4)
            wave_t = wave_t + self.audio_noise * rms * torch.randn(wave_t.shape, generator=g)
        features = (
            log_spectrogram(wave_t, self.sample_rate, n_fft=self.n_fft, hop=self.hop, n_mels=self.n_mels)
            .unsqueeze(1)
            .numpy()
        )
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, features=features, ok=ok)
            tmp.replace(cache)  # a half-written cache never looks valid
        return features, ok

    # --- pairing --------------------------------------------------------------------------
    def _image_splits(self, mnist) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        n_train, n_val, n_test = self.sizes
        g = np.random.default_rng(self.data_seed)
        if "train" in mnist:
            x, y = mnist["train"]
            perm = g.permutation(len(x))
            tx, ty = mnist["test"]
            test_perm = g.permutation(len(tx))[:n_test]
            need = n_train + n_val
            if need > len(x) or n_test > len(tx):
                raise ValueError(
                    f"data.sizes={list(self.sizes)} asks for more images than MNIST has ({len(x)} train, {len(tx)} "
                    f"test)"
                )
            return {
                "train": (x[perm[:n_train]], y[perm[:n_train]]),
                "val": (x[perm[n_train:need]], y[perm[n_train:need]]),
                "test": (tx[test_perm], ty[test_perm]),
            }
        x, y = mnist["test"]
        if sum(self.sizes) > len(x):
            raise ValueError(
                f"data.sizes={list(self.sizes)} adds up to {sum(self.sizes)}, more than the {len(x)} MNIST "
                f"images available (only the t10k split was found in {self.mnist_dir})"
            )
        perm = g.permutation(len(x))
        bounds = np.cumsum([0, n_train, n_val, n_test])
        return {s: (x[perm[a:b]], y[perm[a:b]]) for s, a, b in zip(("train", "val", "test"), bounds[:-1], bounds[1:])}

    @staticmethod
    def _fsdd_split(index: int) -> str:
        return "test" if index < 5 else "val" if index < 10 else "train"

    def _images_to_tensor(self, x: np.ndarray, g: torch.Generator) -> torch.Tensor:
        img = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
        if self.image_occlusion > 0:
            side = max(1, int(round(28 * self.image_occlusion**0.5)))
            top = torch.randint(0, 28 - side + 1, (len(img),), generator=g)
            left = torch.randint(0, 28 - side + 1, (len(img),), generator=g)
            rows, cols = torch.arange(28)[None, :, None], torch.arange(28)[None, None, :]
            box = (
                (rows >= top[:, None, None])
                & (rows < (top + side)[:, None, None])
                & (cols >= left[:, None, None])
                & (cols < (left + side)[:, None, None])
            )
            img = img.masked_fill(box.unsqueeze(1), 0.0)
        if self.image_noise > 0:
            img = img + self.image_noise * torch.randn(img.shape, generator=g)
        return (img - MNIST_MEAN) / MNIST_STD

    def build_splits(self) -> dict[str, TensorDictDataset]:
        mnist = self._mnist()
        recordings = self._recordings()
        features, ok = self._audio_features([r[0] for r in recordings])
        if not ok.all():
            log.warning("Skipped %d unreadable FSDD recordings (data.on_error=skip)", int((~ok).sum()))
        pools: dict[tuple[str, int], list[int]] = {}
        for i, (_, digit, _, index) in enumerate(recordings):
            if ok[i]:
                pools.setdefault((self._fsdd_split(index), digit), []).append(i)
        train_idx = [i for (split, _), idx in pools.items() if split == "train" for i in idx]
        if not train_idx:
            raise ValueError(f"no training recordings (index 10-49) among the FSDD files in {self.fsdd_dir}")
        audio = torch.from_numpy(features)
        mean, std = audio[train_idx].mean(), audio[train_idx].std().clamp_min(1e-6)
        self.audio_stats = {"mean": float(mean), "std": float(std)}
        audio = (audio - mean) / std

        g = torch.Generator().manual_seed(self.data_seed)
        rng = np.random.default_rng(self.data_seed + 1)
        out = {}
        for split, (x, y) in self._image_splits(mnist).items():
            choice = np.empty(len(y), dtype=np.int64)
            for digit in range(10):
                where = np.flatnonzero(y == digit)
                pool = pools.get((split, digit)) or []
                if len(where) and not pool:
                    raise ValueError(f"no FSDD recordings of digit {digit} for the {split} split in {self.fsdd_dir}")
                choice[where] = rng.choice(pool, size=len(where)) if len(where) else []
            out[split] = TensorDictDataset(
                {
                    "image": self._images_to_tensor(x, g),
                    "audio": audio[torch.from_numpy(choice)],
                    "label": torch.from_numpy(y.astype(np.int64)),
                    "present": torch.ones(len(y), 2, dtype=torch.bool),
                }
            )
            out[split].recording_index = choice  # which FSDD file each sample heard
        self.recordings = [r[0].name for r in recordings]
        return out
