"""Reading an export artifact: its metadata and its `torch.export` program (torch alone, no training code)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mmfuse.errors import UserError

ARTIFACT_JSON = "mmfuse_artifact.json"
PROGRAM = "model.pt2"
ONNX = "model.onnx"
EXAMPLE = "example.pt"
EXPORTS = "export"  # <run>/export/<stamp>/ holds a run's artifacts
FORMAT_VERSION = 1



def latest_export(run_dir: Path) -> Path | None:
    found = sorted(p.parent for p in (Path(run_dir) / EXPORTS).glob(f"*/{ARTIFACT_JSON}"))
    return found[-1] if found else None


def find_artifact(path: str | Path) -> Path | None:
    """The artifact folder for an artifact folder, its model.pt2 or json, or a run folder (its newest export); None if
    a run has none."""
    path = Path(path)
    if path.is_file() and path.name in (PROGRAM, ARTIFACT_JSON, ONNX):
        path = path.parent
    if (path / ARTIFACT_JSON).is_file():
        return path
    if (path / "run.json").is_file():
        return latest_export(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    raise UserError(f"{path} is neither an export artifact (no {ARTIFACT_JSON}) nor a run folder (no run.json)")


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / ARTIFACT_JSON
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable artifact description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: expected an mmfuse artifact description with format_version {FORMAT_VERSION}")
    return meta


class Artifact:
    """An exported model: `artifact(inputs) -> outputs` on a dict of batched tensors (see `meta['inputs']`)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        path = self.folder / PROGRAM
        if not path.is_file():
            raise UserError(f"{self.folder}: no {PROGRAM}")
        try:
            self.program = torch.export.load(str(path)).module()
        except Exception as e:  # noqa: BLE001 - truncated, wrong file, other torch: all one message
            raise UserError(f"{path}: cannot load the exported program ({str(e).splitlines()[0][:200]})") from None

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.get("class_names")

    @property
    def task(self) -> str:
        return self.meta["task"]

    @torch.no_grad()
    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        names = [i["name"] for i in self.meta["inputs"]]
        return self.program({k: inputs[k] for k in names})
