"""`data=manifest` on real files: MNIST digits as PNGs and FSDD recordings as WAVs (from ../shared/data)."""
from __future__ import annotations

import csv
import gzip
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from mmfuse.data.audio import fix_length, read_wav
from mmfuse.data.manifest import UNK, ManifestDataModule
from mmfuse.train import train

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
N_ROWS = 60
SMALL_AUDIO = {"image_size": 16, "sample_rate": 8000, "audio_seconds": 0.5, "n_fft": 256, "hop": 128, "n_mels": 20}

pytestmark = pytest.mark.usefixtures("shared_data")  # skipped without ../shared/data, failed under CI


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped) as a numpy array: magic, dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def real_rows(tmp_path_factory) -> tuple[Path, list[dict]]:
    """60 samples: an MNIST digit (PNG), a recording of the same spoken digit (WAV), a caption, a duration."""
    from PIL import Image

    root = tmp_path_factory.mktemp("manifest")
    (root / "img").mkdir()
    (root / "wav").mkdir()
    images = read_idx(SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SHARED_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    first = {d: np.flatnonzero(labels == d) for d in range(10)}
    rows = []
    for i in range(N_ROWS):
        digit, k = i % 10, i // 10
        Image.fromarray(images[first[digit][k]]).save(root / "img" / f"{i}.png")
        speaker = SPEAKERS[k % len(SPEAKERS)]
        source = SHARED_DATA / "fsdd" / "recordings" / f"{digit}_{speaker}_{10 + k}.wav"
        shutil.copy(source, root / "wav" / f"{i}.wav")
        wave, rate = read_wav(source)
        rows.append(
            {
                "id": i,
                "image": f"img/{i}.png",
                "audio": f"wav/{i}.wav",
                "caption": f"{speaker} says {WORDS[digit]}",
                "duration": round(len(wave) / rate, 4),
                "label": WORDS[digit],
            }
        )
    return root, rows


def write_csv(folder: Path, rows: list[dict], name: str = "manifest.csv", columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    path = folder / name
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row.get(c, "") for c in columns)
    return path


def write_jsonl(folder: Path, rows: list[dict], name: str = "manifest.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def copy_rows(real_rows) -> list[dict]:
    return [dict(r) for r in real_rows[1]]


def test_columns_are_inferred_and_real_files_decoded(real_rows):
    root, rows = real_rows
    dm = ManifestDataModule(str(write_csv(root, rows)), **SMALL_AUDIO)
    dm.setup()
    assert dm.columns == {"image": "image", "audio": "audio", "text": "caption", "tabular": ["duration"]}  # id ignored
    specs = dm.modalities
    assert list(specs) == ["image", "audio", "text", "tabular"]
    assert specs["image"].kind == "image" and specs["image"].shape == (1, 16, 16)  # MNIST PNGs are greyscale
    assert (
        specs["audio"].kind == "audio"
        and specs["audio"].shape == (1, 20, 1 + 4000 // 128)
        and specs["audio"].sample_rate == 8000
    )
    assert specs["text"].kind == "text" and specs["text"].dtype == "int64" and specs["text"].has_mask
    assert specs["text"].vocab_size == len(dm.vocabulary) and specs["text"].shape == (3,)
    assert specs["tabular"].shape == (1,)
    assert dm.task == "multiclass" and dm.class_names == sorted(WORDS) and dm.num_classes == 10
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 48, "val": 6, "test": 6}
    labels = torch.cat([dm.splits[s].tensors["label"] for s in ("train", "val", "test")])
    assert Counter(labels.tolist()) == {c: 6 for c in range(10)}
    batch = next(iter(dm.train_dataloader()))
    assert batch["present"].all() and batch["text_mask"].all() and batch["image"].dtype == torch.float32
    train_images = dm.splits["train"].tensors["image"]
    assert train_images.mean().abs() < 1e-4 and (train_images.std() - 1).abs() < 1e-2  # training-split statistics
    assert dm.skipped == {}


def test_explicit_split_column_keeps_row_order_and_values(real_rows):
    root, rows = real_rows
    rows = copy_rows(real_rows)
    for i, r in enumerate(rows):
        r["split"] = {8: "val", 9: "test"}.get(i % 10, "train")
        if r["split"] == "test":
            r["caption"] += " zebra"  # a word the training split never shows
    dm = ManifestDataModule(
        str(write_jsonl(root, rows, "split.jsonl")),
        image_size=28,
        sample_rate=8000,
        audio_seconds=0.5,
        audio_features="waveform",
        image_mean=[0.0],
        image_std=[1.0],
    )
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 48, "val": 6, "test": 6}
    from PIL import Image

    first_test = rows[9]
    t = dm.splits["test"].tensors
    png = np.asarray(Image.open(root / first_test["image"]), dtype=np.float32) / 255
    assert torch.allclose(t["image"][0, 0], torch.from_numpy(png), atol=1e-6)
    wave, _ = read_wav(root / first_test["audio"])
    assert torch.equal(t["audio"][0, 0], fix_length(wave, 4000))
    assert dm.class_names[t["label"][0]] == "nine"
    assert "zebra" not in dm.vocabulary and (t["text"][:, -1] == UNK).all()
    assert dm.splits["train"].tensors["text"].max() < len(dm.vocabulary)


def test_seeded_split_is_deterministic_and_seed_dependent(real_rows):
    root, rows = real_rows
    path = str(write_csv(root, rows, "seeded.csv", columns=["image", "label"]))
    labels = {}
    for seed in (0, 0, 1):
        dm = ManifestDataModule(path, data_seed=seed, image_size=8)
        dm.setup()
        labels.setdefault(seed, []).append(dm.splits["test"].tensors["label"].tolist())
    assert labels[0][0] == labels[0][1] and labels[0][0] != labels[1][0]


def test_multilabel_and_regression_labels(real_rows):
    root, rows = real_rows
    rows = copy_rows(real_rows)
    for i, r in enumerate(rows):
        r["label"] = ["even" if i % 2 == 0 else "odd", *(["small"] if i % 10 < 5 else [])]
    dm = ManifestDataModule(str(write_jsonl(root, rows, "multi.jsonl")), modalities=["tabular", "text"])
    dm.setup()
    assert dm.task == "multilabel" and dm.class_names == ["even", "odd", "small"]
    assert list(dm.modalities) == ["text", "tabular"]
    assert (
        dm.splits["train"].tensors["label"].shape == (48, 3) and dm.splits["train"].tensors["label"].sum(1).min() == 1
    )
    for r in rows:
        r["label"] = "|".join(r["label"])
    dm = ManifestDataModule(str(write_csv(root, rows, "multi.csv")), modalities=["tabular"])
    dm.setup()
    assert dm.task == "multilabel" and dm.num_classes == 3
    dm = ManifestDataModule(
        str(write_csv(root, copy_rows(real_rows), "reg.csv")),
        label_column="duration",
        task="regression",
        ignore=["id", "label"],
        modalities=["text"],
    )
    dm.setup()
    assert (
        dm.task == "regression" and dm.num_classes == 1 and dm.splits["train"].tensors["label"].dtype == torch.float32
    )


def test_training_augmentation_is_per_sample_and_train_only(real_rows):
    root, rows = real_rows
    dm = ManifestDataModule(
        str(write_csv(root, rows, "aug.csv", columns=["image", "label"])),
        image_size=28,
        augment={"crop_padding": 3, "hflip": True},
    )
    dm.setup()
    torch.manual_seed(0)
    a = dm.splits["train"][list(range(16))]["image"]
    b = dm.splits["train"][list(range(16))]["image"]
    stored = dm.splits["train"].tensors["image"][:16]
    assert a.shape == stored.shape and not torch.equal(a, b)
    changed = (a != stored).flatten(1).any(1)
    assert 0 < changed.sum() and (a.amin((1, 2, 3)) >= stored.amin() - 1e-6).all()  # padding is black, not a new value
    assert torch.equal(dm.splits["val"][list(range(6))]["image"], dm.splits["val"].tensors["image"][:6])


def test_missing_values_become_absent_modalities_when_allowed(real_rows, tmp_path):
    root, rows = real_rows
    rows = copy_rows(real_rows)
    rows[2]["image"] = ""
    rows[4]["audio"] = "wav/nope.wav"
    rows[6]["caption"] = ""
    rows[7]["duration"] = ""
    path = write_csv(root, rows, "holes.csv")
    dm = ManifestDataModule(str(path), allow_missing=True, split=[1.0, 0.0, 0.0], **SMALL_AUDIO)
    with pytest.raises(ValueError, match="split 'val' .* is empty"):
        dm.setup()  # every row in train: the empty val split is refused
    dm = ManifestDataModule(str(path), allow_missing=True, **SMALL_AUDIO)
    dm.setup()
    everything = {
        k: torch.cat([dm.splits[s].tensors[k] for s in ("train", "val", "test")]) for k in ("present", "image", "audio")
    }
    absent = (~everything["present"]).nonzero().tolist()
    assert sorted(c for _, c in absent) == [0, 1, 2, 3] and len(absent) == 4  # one hole per modality, all recorded
    holes = ~everything["present"][:, 0]
    assert (everything["image"][holes] == 0).all()
    with pytest.raises(ValueError, match=r"holes\.csv line 4, column 'image': empty image value"):
        ManifestDataModule(str(path), **SMALL_AUDIO).setup()


BAD_ROWS = {
    # reason: (how to spoil row 10 (line 12 of the CSV), expected error type, message pattern)
    "unreadable_audio": (
        "audio",
        ValueError,
        r"line 12, column 'audio': cannot read audio file .*broken10\.wav: expected a WAV",
    ),
    "unreadable_image": (
        "image",
        ValueError,
        r"line 12, column 'image': cannot read image file .*broken10\.png: expected an image",
    ),
    "missing_file": ("missing", FileNotFoundError, r"line 12, column 'audio': audio file not found: .*gone\.wav"),
    "unknown_label": ("label", ValueError, r"line 12, column 'label': label 'eleven' is not one of data.classes"),
    "missing_column": ("short", ValueError, r"line 12: no column 'label' \(the label\)"),
    "missing_value": ("empty", ValueError, r"line 12, column 'caption': empty text value"),
    "bad_split": ("split", ValueError, r"line 12, column 'split': split 'training'"),
}


def spoil(root: Path, row: dict, how: str) -> None:
    """Make one row bad in the way `how` names (broken files are named after the row's id)."""
    if how == "audio":
        broken = f"wav/broken{row['id']}.wav"
        (root / broken).write_bytes((root / row["audio"]).read_bytes()[:30])
        row["audio"] = broken
    elif how == "image":
        broken = f"img/broken{row['id']}.png"
        (root / broken).write_bytes((root / row["image"]).read_bytes()[:60])
        row["image"] = broken
    elif how == "missing":
        row["audio"] = "wav/gone.wav"
    elif how == "label":
        row["label"] = "eleven"
    elif how == "short":
        del row["label"], row["split"]  # the row ends early: its last fields are missing
    elif how == "empty":
        row["caption"] = ""
    elif how == "split":
        row["split"] = "training"


def write_spoiled(root: Path, rows: list[dict], name: str) -> Path:
    """A CSV with a split column; rows without a label are written short (fewer fields than the header)."""
    columns = ["id", "image", "audio", "caption", "duration", "label", "split"]
    path = root / name
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([r[c] for c in columns if c in r])
    return path


def split_rows(real_rows) -> list[dict]:
    rows = copy_rows(real_rows)
    for i, r in enumerate(rows):
        r["split"] = "test" if i % 10 == 9 else "val" if i % 10 == 8 else "train"
    return rows


@pytest.mark.parametrize("reason", list(BAD_ROWS))
def test_bad_rows_name_the_line_and_column(real_rows, reason):
    root, _ = real_rows
    rows = split_rows(real_rows)
    how, error, pattern = BAD_ROWS[reason]
    spoil(root, rows[10], how)
    path = write_spoiled(root, rows, f"bad_{reason}.csv")
    kwargs = {"classes": WORDS} if reason == "unknown_label" else {}
    with pytest.raises(error, match=pattern):
        ManifestDataModule(str(path), **SMALL_AUDIO, **kwargs).setup()


def test_on_error_skip_skips_and_counts_every_bad_row(real_rows):
    root, _ = real_rows
    rows = split_rows(real_rows)
    for i, (how, _, _) in enumerate(BAD_ROWS.values()):
        spoil(root, rows[10 + i], how)
    dm = ManifestDataModule(
        str(write_spoiled(root, rows, "all_bad.csv")), on_error="skip", classes=WORDS, **SMALL_AUDIO
    )
    dm.setup()
    assert dm.skipped == {reason: 1 for reason in BAD_ROWS}
    assert sum(len(s) for s in dm.splits.values()) == N_ROWS - len(BAD_ROWS)


def test_missing_manifest_and_unknown_configured_column(real_rows, tmp_path):
    root, rows = real_rows
    with pytest.raises(FileNotFoundError, match=r"manifest not found: .*absent\.csv"):
        ManifestDataModule(str(tmp_path / "absent.csv")).setup()
    with pytest.raises(ValueError, match=r"data.columns.image='photo' is not a column of manifest .*manifest\.csv"):
        ManifestDataModule(str(write_csv(root, rows)), columns={"image": "photo"}).setup()
    with pytest.raises(ValueError, match=r"no label column 'target'"):
        ManifestDataModule(str(write_csv(root, rows)), label_column="target").setup()
    with pytest.raises(
        ValueError, match=r"columns \['caption', 'speaker'\] all look like text; choose one with data.columns.text"
    ):
        ManifestDataModule(
            str(write_csv(root, [{**r, "speaker": r["caption"].split()[0]} for r in rows], "two_texts.csv"))
        ).setup()
    bad = write_csv(
        root, [{**r, "duration": "n/a" if i == 3 else r["duration"]} for i, r in enumerate(rows)], "nan.csv"
    )
    with pytest.raises(ValueError, match=r"nan\.csv line 5, column 'duration': 'n/a' is not a finite number"):
        ManifestDataModule(str(bad), columns={"tabular": ["duration"], "text": "caption"}, **SMALL_AUDIO).setup()


def test_manifest_trains_end_to_end(real_rows, cfg_factory):
    root, rows = real_rows
    path = write_csv(root, rows, "train.csv")
    overrides = [f"data.{k}={v}" for k, v in SMALL_AUDIO.items()]
    cfg = cfg_factory(
        "data=manifest",
        f"data.path={path}",
        *overrides,
        "data.batch_size=16",
        "fusion=concat",
        "trainer.max_epochs=1",
        "callbacks=minimal",
        "logger=none",
        "trainer.enable_progress_bar=false",
        tiny=False,
    )
    record = train(cfg)
    assert record["status"] == "completed"
    assert {m: s["kind"] for m, s in record["data"]["modalities"].items()} == {
        "image": "image",
        "audio": "audio",
        "text": "text",
        "tabular": "tabular",
    }
    assert record["data"]["sizes"] == {"train": 48, "val": 6, "test": 6}
    assert math.isfinite(record["metrics"]["test/acc"])


def test_a_local_hugging_face_tokenizer_replaces_the_vocabulary(real_rows, tmp_path):
    from mmfuse.encoders.pretrained import HFTextEncoder
    from test_pretrained import tiny_hf_model  # skips without the optional [hf] extra

    root, rows = real_rows
    model_dir = tiny_hf_model(tmp_path / "bert")
    texts = ["the cat sat on the mat", "a dog ran fast", "the red cat"]
    rows = [{"caption": texts[i % 3], "label": r["label"]} for i, r in enumerate(rows)]
    dm = ManifestDataModule(str(write_csv(root, rows, "hf.csv")), tokenizer=str(model_dir), split_column="split")
    dm.setup()
    spec = dm.modalities["text"]
    assert spec.extra == {"tokenizer": str(model_dir)} and spec.vocab_size == 17 and dm.vocabulary == []
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(str(model_dir))(texts[0])["input_ids"]
    t = dm.splits["train"].tensors
    first = [i for i, m in enumerate(t["text_mask"].sum(1).tolist()) if m == len(expected)][0]
    assert t["text"][first, : len(expected)].tolist() == expected
    encoder = HFTextEncoder(spec, model_dir=str(model_dir), out_dim=8)
    assert encoder(t["text"][:4], t["text_mask"][:4]).shape == (4, 8)
    with pytest.raises(FileNotFoundError, match=r"data.tokenizer=.*nowhere: no such folder"):
        ManifestDataModule(str(write_csv(root, rows, "hf.csv")), tokenizer=str(tmp_path / "nowhere")).setup()
