"""The user's own multimodal data: a CSV/TSV or JSONL manifest, one row per sample.

    image,audio,text,age,label,split
    img/0001.png,wav/0001.wav,"a short caption",31,cat,train
    ...

Columns and what they become:

- `image`: path of an image file (PIL reads it; resized so the shorter side
  is `image_size`, centre-cropped square, normalised per channel with the
  training split's mean/std unless given). Kind `image`, (C, S, S).
- `audio`: path of a WAV (or other libsndfile) recording; mono, resampled
  to `sample_rate`, cropped from the start or zero-padded to
  `audio_seconds`, then a log-mel (or log) spectrogram from
  `mmfuse.data.audio.log_spectrogram`, standardised with training
  statistics. Kind `audio`, (1, bands, frames) (or (1, L) as `waveform`).
- `text`: a string; lower-cased word/punctuation tokens, vocabulary from the
  training split (`vocab_size`, `min_freq`; 0 = padding, 1 = unknown), or
  the ids of a local Hugging Face tokenizer (`tokenizer=<dir>`, recorded in
  the spec's `extra["tokenizer"]` for `encoder/text=hf`). Kind `text`, (T,)
  int64 ids with `text_mask`.
- numeric columns: grouped as `tabular` (D,), standardised per column with
  training statistics.
- `label`: a class name or number; several labels separated by
  `label_separator` (or a JSON list) make a multilabel task; a number with
  `task=regression`.
- `split` (optional): train / val / test (also valid, validation, dev);
  without it, a split seeded by `data_seed` in the fractions `split`,
  stratified by label with `stratify` (multiclass; each class keeps its
  share in every split, see mmfuse.data.stratify).

Which column feeds which modality is inferred (image or audio file
extensions, numbers, otherwise text) unless set in `columns`. Relative paths
are relative to the manifest's folder. Every file is decoded once, in
`setup`, into in-memory tensors; training indexes them a batch at a time.
Training images may be augmented per batch (random crop after padding,
horizontal flip), vectorised with a random offset per sample.

Errors name the manifest's line (1-based, the header is line 1 of a CSV)
and column. An empty cell or missing file makes the modality absent in
`present` with `allow_missing=true`, and is an error otherwise; with
`on_error=skip` a bad row is skipped and counted in `datamodule.skipped`.

The package, in the order a manifest is read: `mmfuse.data.rows` (the file's
rows, shared with `mmfuse predict`), `options` (settings by group), `columns`
(which column feeds which modality), `samples` (checks of each row), `labels`,
`splits`, `files` (decoding image and audio files), `tensors` (per-modality
tensors with training statistics), `augment`, and `datamodule`.
"""
from mmfuse.data.decode import UNK
from mmfuse.data.manifest.datamodule import ManifestDataModule

__all__ = ["ManifestDataModule", "UNK"]
