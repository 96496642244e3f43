"""Audio in plain torch: WAV reading, fixed-length crops, log and log-mel spectrograms.

torchaudio cannot be installed beside the torch these machines provide, so
the STFT is `torch.stft` and the mel filterbank is computed here (HTK mel
scale, triangular filters without area normalisation: the same filters as
`torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk")`).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch


def read_wav(path: str | Path, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """A mono float32 waveform (L,) in [-1, 1] and its sample rate.

    Multi-channel files are averaged to mono; with `sample_rate` the signal is
    resampled to it (polyphase, scipy.signal.resample_poly). Raises
    FileNotFoundError for a missing file and ValueError naming the file for
    one that cannot be decoded (truncated, not audio, empty).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        import soundfile
    except ImportError as e:  # pragma: no cover - soundfile is a dependency
        raise ImportError("reading audio files needs the 'soundfile' package (pip install soundfile)") from e
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one message naming the file
        raise ValueError(
            f"cannot read audio file {path}: expected a WAV (or other libsndfile) recording ({e})"
        ) from None
    if data.shape[0] == 0:
        raise ValueError(f"cannot read audio file {path}: it holds no samples")
    wave = data.mean(axis=1)
    if sample_rate is not None and sample_rate != rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(sample_rate), int(rate))
        wave = resample_poly(wave, sample_rate // g, rate // g).astype(np.float32)
        rate = sample_rate
    return torch.from_numpy(np.ascontiguousarray(wave)), int(rate)


def fix_length(wave: torch.Tensor, length: int, crop: str = "start") -> torch.Tensor:
    """Crop or zero-pad the last dimension to `length` samples.

    crop="start" keeps the beginning (recordings trimmed to their onset, as
    FSDD's), "center" keeps the middle. Padding always goes at the end.
    """
    if crop not in ("start", "center"):
        raise ValueError(f"crop must be 'start' or 'center', got {crop!r}")
    n = wave.shape[-1]
    if n >= length:
        start = 0 if crop == "start" else (n - length) // 2
        return wave[..., start : start + length]
    return torch.nn.functional.pad(wave, (0, length - n))


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@lru_cache(maxsize=32)
def mel_filterbank(
    n_fft: int, sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), HTK mel scale, peak value 1.

    Filter i rises from mel point i to i+1 and falls to i+2, with n_mels + 2
    points spaced evenly on the mel scale between f_min and f_max (default:
    the Nyquist frequency).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"mel filterbank needs 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, "
            f"sample_rate={sample_rate}"
        )
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    points = mel_to_hz(
        torch.linspace(
            float(hz_to_mel(torch.tensor(f_min))),
            float(hz_to_mel(torch.tensor(f_max))),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    lower, center, upper = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (freqs - lower) / (center - lower)
    falling = (upper - freqs) / (upper - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def spectrogram_frames(length: int, hop: int) -> int:
    """Number of STFT frames `log_spectrogram` gives for `length` samples (centred frames)."""
    return 1 + length // hop


def log_spectrogram(
    wave: torch.Tensor,
    sample_rate: int,
    n_fft: int = 256,
    hop: int | None = None,
    n_mels: int | None = 40,
    f_min: float = 0.0,
    f_max: float | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Log power spectrogram of waveforms, optionally on a mel scale.

    wave: (..., L) float waveforms; any leading dimensions are kept.
    sample_rate: in Hz (places the mel filters).
    n_fft: FFT size and Hann window length; hop: frame step (default n_fft // 4).
    n_mels: number of mel bands; None keeps the n_fft // 2 + 1 linear bins.
    f_min, f_max: band edges of the mel filters (default 0 and Nyquist).
    eps: added before the log so that silence (zero padding) stays finite.

    Returns (..., n_mels or n_fft // 2 + 1, 1 + L // hop): log(|STFT|^2 [@ mel] + eps),
    frames centred on multiples of hop (zero padding at the edges).
    """
    hop = hop or n_fft // 4
    if n_fft < 2 or hop < 1:
        raise ValueError(f"log_spectrogram needs n_fft >= 2 and hop >= 1, got n_fft={n_fft}, hop={hop}")
    lead, length = wave.shape[:-1], wave.shape[-1]
    flat = wave.reshape(-1, length).float()
    window = torch.hann_window(n_fft, device=flat.device)
    spec = torch.stft(
        flat, n_fft=n_fft, hop_length=hop, window=window, center=True, pad_mode="constant", return_complex=True
    )
    power = spec.real.square() + spec.imag.square()  # (N, n_fft // 2 + 1, frames)
    if n_mels:
        fb = mel_filterbank(n_fft, int(sample_rate), int(n_mels), float(f_min), None if f_max is None else float(f_max))
        power = torch.matmul(fb.to(power.device), power)
    return torch.log(power + eps).reshape(*lead, *power.shape[-2:])
