"""Audio encoders: waveforms (C, L) get 1-D convolutions, spectrograms (C, F, T) 2-D ones."""
from __future__ import annotations

from mmfuse.data.spec import ModalitySpec
from mmfuse.encoders.image import ConvEncoder


class AudioCNN(ConvEncoder):
    """Conv1d stack for waveforms, Conv2d stack for spectrograms, chosen from the spec's shape."""

    def __init__(self, spec: ModalitySpec, out_dim: int = 64, channels: tuple[int, ...] = (16, 32, 32),
                 downsample: int | str = 1):
        super().__init__(spec, out_dim, tuple(channels), downsample)
