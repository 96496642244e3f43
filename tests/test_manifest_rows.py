"""One manifest row reader for training and `mmfuse predict`: CSV/TSV/JSONL, line numbers, and a byte-order mark."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mmfuse.data.manifest import ManifestDataModule
from mmfuse.data.rows import MISSING, read_rows
from mmfuse.deploy.artifact import Artifact
from mmfuse.deploy.predict import predict, resolve_artifact, samples_from_manifest
from mmfuse.deploy.preprocess import Preprocessor
from mmfuse.errors import UserError as InputError
from test_data_formats import write_synthetic_manifest
from test_deploy import trained_run

BOM = "\ufeff".encode()
# the generated manifest's files at small sizes: image,audio,text,size,label (image is the first column)
SMALL = {"image_size": 12, "sample_rate": 8000, "audio_seconds": 0.25, "n_fft": 128, "hop": 64, "n_mels": 16,
         "split": [0.5, 0.25, 0.25]}


def test_csv_tsv_and_jsonl_rows_with_their_lines_problems_and_a_byte_order_mark(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_bytes(BOM + b'image,text,label\na.png,"two\nlines",cat\n\nb.png\nc.png,x,dog,extra\n')
    header, rows = read_rows(csv_path)
    assert header == ["image", "text", "label"]  # not "\ufeffimage"
    assert [r.line for r in rows] == [2, 5, 6]  # a quoted line break and a blank line counted
    assert rows[0].values == {"image": "a.png", "text": "two\nlines", "label": "cat"}
    assert rows[1].values["text"] is MISSING and rows[1].problem is None
    assert rows[2].problem[0] == "extra_fields" and "m.csv line 6: 4 fields for 3 columns" in rows[2].problem[1]
    tsv_path = tmp_path / "m.tsv"
    tsv_path.write_text("image\tlabel\na.png\tcat\n")
    assert read_rows(tsv_path)[1][0].values == {"image": "a.png", "label": "cat"}
    jsonl_path = tmp_path / "m.jsonl"
    jsonl_path.write_bytes(BOM + b'{"image": "a.png", "label": 1}\n[1]\n{"text": "hi", "label": 0}\n')
    header, rows = read_rows(jsonl_path)
    assert header == ["image", "label", "text"] and rows[0].values["text"] is MISSING
    assert rows[1].problem == ("invalid_json", f"manifest {jsonl_path} line 2: expected a JSON object, got list")
    with pytest.raises(ValueError, match=r"unknown format '\.txt'; expected \.csv, \.tsv or \.jsonl"):
        read_rows(tmp_path / "m.txt")


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    """The same generated manifest, as written and saved with a byte-order mark (as spreadsheet programs do)."""
    plain = write_synthetic_manifest(tmp_path_factory.mktemp("rows"))
    bom = plain.with_name("bom.csv")
    bom.write_bytes(BOM + plain.read_bytes())
    return plain, bom


@pytest.fixture(scope="module")
def bom_run(manifests, tmp_path_factory) -> Path:
    _, bom = manifests
    sizes = [f"data.{k}={v}" for k, v in SMALL.items() if k != "split"]
    overrides = ["data=manifest", f"data.path={bom}", *sizes, "data.split=[0.5,0.25,0.25]", "data.batch_size=8",
                 "fusion=concat"]
    return trained_run(tmp_path_factory.mktemp("runs") / "concat-s0", overrides, tiny=False)


def test_a_byte_order_mark_changes_nothing_in_training(manifests, bom_run):
    plain, bom = manifests
    a, b = ManifestDataModule(str(plain), **SMALL), ManifestDataModule(str(bom), **SMALL)
    a.setup()
    b.setup()
    assert b.columns == a.columns and list(b.columns)[0] == "image"
    for split in a.splits:
        assert a.splits[split].tensors.keys() == b.splits[split].tensors.keys()
        assert all(torch.equal(a.splits[split].tensors[k], b.splits[split].tensors[k]) for k in a.splits[split].tensors)
    record = json.loads((bom_run / "run.json").read_text())
    assert list(record["data"]["modalities"]) == ["image", "audio", "text", "tabular"]


def test_a_byte_order_mark_changes_nothing_in_predict(manifests, bom_run, tmp_path):
    plain, bom = manifests
    folder = resolve_artifact(str(bom_run), trust=False)
    pre = Preprocessor(Artifact(folder).meta)
    samples, _ = samples_from_manifest(bom, pre)
    assert all(set(s) == {"image", "audio", "text", "tabular"} for s in samples)  # the first column is read too
    out = tmp_path / "bom_predictions.csv"
    done = run_cli("predict", str(bom_run), "--input", str(bom), "--output", str(out))
    assert done.returncode == 0, done.stderr
    _, names, probs = predict(str(bom_run), [], plain)
    with open(out, newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["sample"] for r in written] == names == [f"line {i}" for i in range(2, 26)]
    from_cli = torch.tensor([[float(v) for k, v in r.items() if k.startswith("p_")] for r in written])
    assert torch.allclose(from_cli, probs, atol=2e-6)  # the CSV holds 6 decimals


def test_predict_reads_jsonl_like_training_and_names_a_bad_row(manifests, bom_run, tmp_path):
    plain, _ = manifests
    with open(plain, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r["id"] = i  # id 0 names the sample "0", not its line
        r["image"], r["audio"] = str(plain.parent / r["image"]), str(plain.parent / r["audio"])  # absolute: kept
    good = tmp_path / "rows.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, names, probs = predict(str(bom_run), [], good)
    _, _, expected = predict(str(bom_run), [], plain)
    assert names[:3] == ["0", "1", "2"] and torch.allclose(probs, expected)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(InputError, match=r"bad\.jsonl line 2: not valid JSON"):
        predict(str(bom_run), [], bad)
