"""The image and audio files of the samples, each decoded once; a sample with a bad file is left out (or raises)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from mmfuse.data.audio import fix_length, read_wav
from mmfuse.data.decode import image_pixels
from mmfuse.data.manifest.options import AudioOptions, ImageOptions
from mmfuse.data.manifest.samples import Sample, where
from mmfuse.data.readers import SampleErrors, read_image
from mmfuse.data.rows import cell

log = logging.getLogger(__name__)


class _SkipSample(Exception):
    """A sample's file was bad and the sample was counted as skipped."""


class FileDecoder:
    """Decodes the files a sample names: uint8 (C, S, S) pixels and (L,) waves, or None for an absent modality."""

    def __init__(self, manifest: Path, columns: dict[str, Any], image: ImageOptions, audio: AudioOptions,
                 allow_missing: bool, errors: SampleErrors):
        self.manifest, self.columns, self.image, self.audio = manifest, columns, image, audio
        self.allow_missing, self.errors = allow_missing, errors

    def decode(self, samples: list[Sample]) -> tuple[list[int], list[torch.Tensor | None], list[torch.Tensor | None]]:
        """Indices of the samples kept, and their pixels and waves."""
        kept, images, waves = [], [], []
        for j, s in enumerate(samples):
            try:
                image = self._image(s) if "image" in self.columns and "image" not in s.absent else None
                wave = self._audio(s) if "audio" in self.columns and "audio" not in s.absent else None
            except _SkipSample:
                continue
            if len(s.absent) == len(self.columns):
                self.errors.count("no_modality")
                log.warning("%s: every input is missing; skipped", where(self.manifest, s.row))
                continue
            kept.append(j)
            images.append(image)
            waves.append(wave)
        return kept, images, waves

    def _file(self, s: Sample, kind: str) -> Path | None:
        """The sample's file for `kind`, or None when it is absent (allow_missing); a missing one is reported."""
        path = Path(str(cell(s.row.values[self.columns[kind]])))
        path = path if path.is_absolute() else self.manifest.parent / path
        if not path.is_file():
            if self.allow_missing:
                s.absent.add(kind)
                return None
            self.errors("missing_file", f"{where(self.manifest, s.row, self.columns[kind])}: {kind} file not found: "
                                        f"{path} (data.allow_missing=true makes it an absent modality)",
                        FileNotFoundError)
            raise _SkipSample
        return path

    def _image(self, s: Sample) -> torch.Tensor | None:
        path = self._file(s, "image")
        if path is None:
            return None
        try:
            img = read_image(path)
        except ValueError as e:
            self.errors("unreadable_image", f"{where(self.manifest, s.row, self.columns['image'])}: {e}")
            raise _SkipSample from None
        return image_pixels(img, self.image.image_size, self.image.image_channels)

    def _audio(self, s: Sample) -> torch.Tensor | None:
        path = self._file(s, "audio")
        if path is None:
            return None
        try:
            wave, _ = read_wav(path, self.audio.sample_rate)
        except ValueError as e:
            self.errors("unreadable_audio", f"{where(self.manifest, s.row, self.columns['audio'])}: {e}")
            raise _SkipSample from None
        return fix_length(wave, self.audio.length)
