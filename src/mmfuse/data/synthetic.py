"""A synthetic multimodal benchmark with controllable cross-modal interactions.

Each sample has a label y in [0, K) and, per modality m, a discrete latent
level z_m that the modality's input encodes (plus noise). How the levels
relate to the label follows the partial-information view of multimodal data:

- redundant: z_m = y for every m; each modality alone predicts y.
- unique:    y is written in base b = ceil(K ** (1/M)) and modality m holds
             digit m; each modality carries a part that the others lack.
- synergy:   z_1..z_{M-1} are uniform and z_M = (y - sum z_i) mod K, so
             y = sum z_m mod K; any M-1 modalities are independent of y, and
             every single modality alone is at chance.
- mixed:     each sample draws one of the three mechanisms; level values are
             offset per mechanism, so the mechanism itself is observable.

Encodings of a level z:
- image (1, S, S): a smooth random prototype per level + Gaussian noise.
- text (T,) token ids with padding mask: filler tokens and level keywords;
  noise is the chance that a keyword belongs to a random other level.
- audio: a sinusoid whose frequency identifies the level, random phase, plus
  Gaussian noise; as a waveform (1, L) or log-magnitude spectrogram (1, F, T).
- tabular (D,): a random prototype vector per level + Gaussian noise.

All of it is generated in memory, vectorised, from `data_seed`: the same
seed gives the same tensors bit for bit.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mmfuse.data.base import MultimodalDataModule
from mmfuse.data.batches import TensorDictDataset
from mmfuse.data.spec import ModalitySpec

MODALITIES = ("image", "text", "audio", "tabular")
INTERACTIONS = ("redundant", "unique", "synergy", "mixed")
KEYWORDS_PER_LEVEL = 3


class SyntheticDataModule(MultimodalDataModule):
    name = "synthetic"
    task = "multiclass"

    def __init__(
        self,
        modalities: Sequence[str] = MODALITIES,
        interaction: str = "mixed",
        num_classes: int = 4,
        n_samples: int = 10_000,
        split: Sequence[float] = (0.7, 0.15, 0.15),
        noise: dict[str, float] | None = None,
        image_size: int = 16,
        text_length: Sequence[int] = (8, 24),
        vocab_size: int = 64,
        keyword_rate: float = 0.3,
        audio_length: int = 256,
        audio_representation: str = "waveform",
        sample_rate: int = 8000,
        tabular_dim: int = 16,
        data_seed: int = 0,
        **settings: Any,  # batch sizes, pin_memory, seed, on_error: see MultimodalDataModule
    ):
        super().__init__(**settings)
        modalities = list(modalities)
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise ValueError(
                f"data.modalities: unknown or empty {unknown or modalities}; choose from {list(MODALITIES)}"
            )
        if len(set(modalities)) != len(modalities):
            raise ValueError(f"data.modalities lists a modality twice: {modalities}")
        if interaction not in INTERACTIONS:
            raise ValueError(f"data.interaction={interaction!r}; expected one of {list(INTERACTIONS)}")
        if interaction != "redundant" and len(modalities) < 2:
            raise ValueError(f"data.interaction={interaction} needs at least 2 modalities, got {modalities}")
        if num_classes < 2:
            raise ValueError(f"data.num_classes must be >= 2, got {num_classes}")
        if len(split) != 3 or any(s < 0 for s in split) or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            raise ValueError(f"data.split must be three non-negative fractions summing to 1, got {list(split)}")
        if audio_representation not in ("waveform", "spectrogram"):
            raise ValueError(f"data.audio_representation={audio_representation!r}; expected waveform or spectrogram")
        if not (1 <= text_length[0] <= text_length[1]):
            raise ValueError(f"data.text_length must be [min, max] with 1 <= min <= max, got {list(text_length)}")
        noise = {**{"image": 1.0, "text": 0.2, "audio": 1.0, "tabular": 1.0}, **dict(noise or {})}
        bad = {k: v for k, v in noise.items() if k not in MODALITIES or v < 0}
        if bad:
            raise ValueError(f"data.noise: unknown modality or negative level {bad}; keys are {list(MODALITIES)}")
        self.modality_names = modalities
        self.interaction = interaction
        self.num_classes = num_classes
        self.class_names = [str(i) for i in range(num_classes)]
        self.n_samples = n_samples
        self.split = tuple(split)
        self.noise = noise
        self.image_size = image_size
        self.text_length = tuple(text_length)
        self.keyword_rate = keyword_rate
        self.audio_length = audio_length
        self.audio_representation = audio_representation
        self.sample_rate = sample_rate
        self.tabular_dim = tabular_dim
        self.data_seed = data_seed
        self.base = math.ceil(num_classes ** (1 / len(modalities)) - 1e-9)
        while self.base ** len(modalities) < num_classes:
            self.base += 1
        self.n_levels = {"redundant": num_classes, "unique": self.base, "synergy": num_classes}.get(
            interaction, 2 * num_classes + self.base
        )
        self.vocab_size = max(vocab_size, self.n_levels * KEYWORDS_PER_LEVEL + 16)

    # --- spec --------------------------------------------------------------------
    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        specs = {}
        for m in self.modality_names:
            if m == "image":
                specs[m] = ModalitySpec("image", (1, self.image_size, self.image_size))
            elif m == "text":
                specs[m] = ModalitySpec(
                    "text", (self.text_length[1],), dtype="int64", vocab_size=self.vocab_size, has_mask=True
                )
            elif m == "audio":
                specs[m] = ModalitySpec("audio", self._audio_shape(), sample_rate=self.sample_rate)
            else:
                specs[m] = ModalitySpec("tabular", (self.tabular_dim,))
        return specs

    def _audio_shape(self) -> tuple[int, ...]:
        if self.audio_representation == "waveform":
            return (1, self.audio_length)
        return tuple(self._spectrogram(torch.zeros(1, 1, self.audio_length)).shape[1:])

    def fingerprint_params(self) -> dict[str, Any]:
        keys = (
            "modality_names",
            "interaction",
            "num_classes",
            "n_samples",
            "split",
            "noise",
            "image_size",
            "text_length",
            "vocab_size",
            "keyword_rate",
            "audio_length",
            "audio_representation",
            "tabular_dim",
            "data_seed",
        )
        return {"name": self.name, **{k: getattr(self, k) for k in keys}}

    # --- generation --------------------------------------------------------------
    def latent_levels(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (N,) and per-modality levels (N, M) for the chosen interaction."""
        n, k, m = self.n_samples, self.num_classes, len(self.modality_names)
        y = torch.randint(k, (n,), generator=g)
        redundant = y[:, None].expand(n, m)
        powers = self.base ** torch.arange(m)
        unique = (y[:, None] // powers) % self.base
        free = torch.randint(k, (n, m - 1), generator=g)
        synergy = torch.cat([free, ((y - free.sum(1)) % k)[:, None]], dim=1)
        if self.interaction == "redundant":
            return y, redundant.clone()
        if self.interaction == "unique":
            return y, unique
        if self.interaction == "synergy":
            return y, synergy
        mechanism = torch.randint(3, (n, 1), generator=g)
        z = torch.where(mechanism == 0, redundant, torch.where(mechanism == 1, k + unique, k + self.base + synergy))
        return y, z

    def _spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        n_fft = 64
        spec = torch.stft(
            wave.reshape(-1, wave.shape[-1]),
            n_fft=n_fft,
            hop_length=n_fft // 4,
            window=torch.hann_window(n_fft),
            return_complex=True,
        )
        return torch.log1p(spec.abs()).reshape(wave.shape[0], 1, *spec.shape[-2:])

    def _encode(self, modality: str, z: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
        n, levels, noise = len(z), self.n_levels, self.noise[modality]
        if modality == "image":
            s = self.image_size
            coarse = torch.randn(levels, 1, max(2, s // 4), max(2, s // 4), generator=g)
            protos = F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)
            protos = (protos - protos.mean((1, 2, 3), keepdim=True)) / protos.std((1, 2, 3), keepdim=True)
            return {"image": protos[z] + noise * torch.randn(n, 1, s, s, generator=g)}
        if modality == "tabular":
            protos = torch.randn(levels, self.tabular_dim, generator=g)
            return {"tabular": protos[z] + noise * torch.randn(n, self.tabular_dim, generator=g)}
        if modality == "audio":
            freqs = torch.linspace(3.0, self.audio_length / 5, levels)[torch.randperm(levels, generator=g)]
            t = torch.arange(self.audio_length) / self.audio_length
            phase = 2 * math.pi * torch.rand(n, 1, generator=g)
            wave = torch.sin(2 * math.pi * freqs[z][:, None] * t + phase) + noise * torch.randn(
                n, self.audio_length, generator=g
            )
            wave = wave[:, None, :]
            return {"audio": wave if self.audio_representation == "waveform" else self._spectrogram(wave)}
        # text: id 0 is padding; keyword ids are disjoint per level
        lo, hi = self.text_length
        keywords = (1 + torch.randperm(self.vocab_size - 1, generator=g)[: levels * KEYWORDS_PER_LEVEL]).view(
            levels, -1
        )
        lengths = torch.randint(lo, hi + 1, (n,), generator=g)
        mask = torch.arange(hi)[None, :] < lengths[:, None]
        is_keyword = torch.rand(n, hi, generator=g) < self.keyword_rate
        is_keyword[:, 0] = True  # every text names its level at least once (before noise)
        level = torch.where(
            torch.rand(n, hi, generator=g) < noise, torch.randint(levels, (n, hi), generator=g), z[:, None]
        )
        keyword = keywords[level, torch.randint(KEYWORDS_PER_LEVEL, (n, hi), generator=g)]
        filler = torch.randint(1, self.vocab_size, (n, hi), generator=g)
        tokens = torch.where(is_keyword, keyword, filler) * mask
        return {"text": tokens, "text_mask": mask}

    def generate(self) -> dict[str, torch.Tensor]:
        """Every sample of every split, as one tensor dict."""
        g = torch.Generator().manual_seed(self.data_seed)
        y, z = self.latent_levels(g)
        out: dict[str, torch.Tensor] = {"label": y}
        for i, m in enumerate(self.modality_names):
            # a generator per modality keeps a modality's data fixed when others are added
            gm = torch.Generator().manual_seed(self.data_seed * 1000 + MODALITIES.index(m) + 1)
            out.update(self._encode(m, z[:, i], gm))
        out["present"] = torch.ones(len(y), len(self.modality_names), dtype=torch.bool)
        return out

    def build_splits(self) -> dict[str, TensorDictDataset]:
        full = TensorDictDataset(self.generate())
        perm = torch.randperm(self.n_samples, generator=torch.Generator().manual_seed(self.data_seed + 7))
        n_train = int(round(self.split[0] * self.n_samples))
        n_val = int(round(self.split[1] * self.n_samples))
        return {
            "train": full.subset(perm[:n_train]),
            "val": full.subset(perm[n_train : n_train + n_val]),
            "test": full.subset(perm[n_train + n_val :]),
        }
