"""Write AV-MNIST files in MultiBench's layout from real data: MNIST digits paired with spoken FSDD digits.

    <out_dir>/image/{train,test}_data.npy   (N, 784) uint8 MNIST digits
    <out_dir>/audio/{train,test}_data.npy   (N, 112, 112) uint8 log-power spectrograms of spoken digits
    <out_dir>/{train,test}_labels.npy       (N,) int64 digits 0-9
    <out_dir>/sources.json                  per split and sample: the MNIST t10k index and the FSDD file heard

the layout `data=avmnist` (mmfuse/data/avmnist.py) reads, so that data set and
its defaults can be trained and benchmarked where MultiBench's own files are
not at hand. Images come from the MNIST IDX files (t10k alone is enough:
train and test images are disjoint draws from it); each is paired with a
recording of the same digit, FSDD's recordings 5-49 for training images and
0-4 for test images (FSDD's own split), so no test recording is heard in
training. The readers and the STFT are avmnist_real's and audio.py's.

`hard=True` makes the variant the original AV-MNIST is (Vielzeuf et al. 2018):
images projected on their first few principal components (4 keep about 29% of
the pixel variance; the original removed 75% of the energy) and white noise
added to each recording at a fixed SNR (-3 dB: noise power twice the
recording's), because on clean digits every fusion strategy is near 100% and
nothing separates them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mmfuse.data.audio import fix_length, log_spectrogram, read_wav
from mmfuse.data.avmnist_real import FSDD_NAME, MNIST_FILES, _idx_path, read_idx

SAMPLE_RATE = 8000
SIDE = 112                    # spectrograms are SIDE frequency bins x SIDE frames, as MultiBench's AV-MNIST
N_FFT = 2 * (SIDE - 1)        # 222: n_fft // 2 + 1 = 112 linear frequency bins
HOP = 72                      # 7992 samples (~1 s at 8 kHz) give 1 + 7992 // 72 = 112 frames
LENGTH = (SIDE - 1) * HOP


def _mnist(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (_idx_path(mnist_dir, stem) for stem in MNIST_FILES["test"])
    if images is None or labels is None:
        names = ", ".join(f"{stem}[.gz]" for stem in MNIST_FILES["test"])
        raise FileNotFoundError(f"MNIST t10k IDX files ({names}) not found in {mnist_dir}")
    return read_idx(images).reshape(-1, 784), read_idx(labels).astype(np.int64)


def _recordings(fsdd_dir: Path) -> list[tuple[Path, int, int]]:
    folder = fsdd_dir / "recordings" if (fsdd_dir / "recordings").is_dir() else fsdd_dir
    found = [(p, int(m.group(1)), int(m.group(3)))
             for p in sorted(folder.glob("*.wav")) if (m := FSDD_NAME.match(p.name))]
    if not found:
        raise FileNotFoundError(f"no FSDD recordings {{digit}}_{{speaker}}_{{index}}.wav in {folder}")
    return found


def _waves(files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, LENGTH) zero-padded waveforms and (R,) RMS of each recording's own samples (the padding excluded)."""
    waves, rms = torch.zeros(len(files), LENGTH), torch.zeros(len(files))
    for i, path in enumerate(files):
        wave, rate = read_wav(path, sample_rate=SAMPLE_RATE)
        waves[i] = fix_length(wave, LENGTH)
        rms[i] = wave[:LENGTH].pow(2).mean().sqrt()
    return waves, rms


def _spectrograms(waves: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """(N, 112, 112) log-power spectrograms (linear frequency), computed in chunks to bound memory."""
    return torch.cat([log_spectrogram(waves[i:i + chunk], SAMPLE_RATE, n_fft=N_FFT, hop=HOP, n_mels=None)
                      for i in range(0, len(waves), chunk)])


def _to_uint8(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.rint((x - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def write_avmnist_files(out_dir: str | Path, mnist_dir: str | Path, fsdd_dir: str | Path, n_train: int = 5000,
                        n_test: int = 2000, hard: bool = False, image_components: int = 4, snr_db: float = -3.0,
                        seed: int = 0) -> Path:
    """Write the files for `n_train` training (validation tail included) and `n_test` test samples; returns out_dir.

    Deterministic for `seed` (which images, which recording each hears, the noise).
    """
    out_dir, mnist_dir, fsdd_dir = Path(out_dir), Path(mnist_dir), Path(fsdd_dir)
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    if hard and not 1 <= image_components <= 784:
        raise ValueError(f"image_components={image_components}: expected 1..784 principal components")
    images, labels = _mnist(mnist_dir)
    if n_train + n_test > len(images):
        raise ValueError(f"n_train + n_test = {n_train + n_test} is more than the {len(images)} MNIST images "
                         f"in {mnist_dir}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    splits = {"train": order[:n_train], "test": order[n_train:n_train + n_test]}

    recordings = _recordings(fsdd_dir)
    waves, rms = _waves([r[0] for r in recordings])
    pools = {(split, d): [i for i, (_, digit, index) in enumerate(recordings)
                          if digit == d and (index < 5) == (split == "test")]  # FSDD's split: 0-4 test
             for split in splits for d in range(10)}
    empty = [key for key, pool in pools.items() if not pool]
    if empty:
        raise ValueError(f"no FSDD recordings for (split, digit) {empty} in {fsdd_dir}")

    pixels = {s: images[idx].astype(np.float32) / 255.0 for s, idx in splits.items()}
    if hard:  # project on the training images' first principal components, and back to pixels
        mean = pixels["train"].mean(0)
        components = np.linalg.svd(pixels["train"] - mean, full_matrices=False)[2][:image_components]
        pixels = {s: (x - mean) @ components.T @ components + mean for s, x in pixels.items()}
    noise = torch.Generator().manual_seed(seed + 1)
    clean = None if hard else _spectrograms(waves)  # one per recording, shared by every image that hears it
    spectra, pairs = {}, {}
    for split, idx in splits.items():
        pairs[split] = np.array([rng.choice(pools[(split, int(d))]) for d in labels[idx]])
        chosen = torch.from_numpy(pairs[split])
        if hard:  # a fresh noise draw per sample: std = RMS * 10^(-SNR/20)
            scale = rms[chosen] * 10 ** (-snr_db / 20)
            noisy = waves[chosen] + scale[:, None] * torch.randn(len(chosen), LENGTH, generator=noise)
            spectra[split] = _spectrograms(noisy).numpy()
        else:
            spectra[split] = clean[chosen].numpy()
    lo, hi = np.percentile(spectra["train"], [0.5, 99.9])  # the training split's range maps to 0..255

    (out_dir / "image").mkdir(parents=True, exist_ok=True)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    for split, idx in splits.items():
        np.save(out_dir / "image" / f"{split}_data.npy", _to_uint8(pixels[split], 0.0, 1.0))
        np.save(out_dir / "audio" / f"{split}_data.npy", _to_uint8(spectra[split], lo, hi))
        np.save(out_dir / f"{split}_labels.npy", labels[idx])
    sources = {split: {"mnist_t10k_index": idx.tolist(), "fsdd_file": [recordings[i][0].name for i in pairs[split]]}
               for split, idx in splits.items()}
    sources["settings"] = {"hard": hard, "image_components": image_components if hard else None,
                           "snr_db": snr_db if hard else None, "seed": seed}
    (out_dir / "sources.json").write_text(json.dumps(sources))
    return out_dir
