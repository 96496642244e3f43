"""notebooks/fusion_comparison.ipynb runs top to bottom against a tiny sweep, so it cannot rot."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import ROOT
from test_compare import shared_tiny_sweep

NOTEBOOK = ROOT / "notebooks" / "fusion_comparison.ipynb"
KERNEL = "mmfuse-test-python"


def venv_kernel(folder: Path) -> None:
    """A kernel spec that runs this interpreter (the venv's), found first through JUPYTER_PATH."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mmfuse test (venv)", "language": "python"}))


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert any("load_runs(" in c.source for c in code) and any("MMFUSE_SWEEP" in c.source for c in code)


def test_notebook_runs_against_a_tiny_sweep(tmp_path_factory, tmp_path, monkeypatch):
    sweep = shared_tiny_sweep(tmp_path_factory)
    venv_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MMFUSE_SWEEP", str(sweep))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, kernel_name=KERNEL, timeout=180, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"Sweep: {sweep}" in text
    assert "failed" in text  # the sweep's failing job is counted, not hidden
    assert "No per-class metrics" in text  # what the records hold today, said in the notebook
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) >= 4
