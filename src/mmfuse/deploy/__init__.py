"""Deployment: `mmfuse export` writes a self-contained artifact; `mmfuse predict` runs it on files.

An artifact folder holds `model.pt2` (a `torch.export` program that takes a
dict of input tensors and returns class probabilities, or values for a
regression), optionally `model.onnx`, `example.pt` (a batch of inputs with
the outputs the training code gave for it) and `mmfuse_artifact.json` (inputs,
class names, the preprocessing of each modality, the self-check's figures).
Loading it needs torch alone:

    program = torch.export.load("model.pt2").module()
    probs = program({"present": ..., "image": ..., "audio": ...})

`artifact.py` and `preprocess.py` import neither Lightning nor Hydra.
"""

FORMATS = ("pt2", "onnx", "both")  # `mmfuse export --format`: here, so that `--help` needs no torch
