# mmfuse's configs: Hydra config groups, one folder each (train.yaml holds the defaults list).
# This file makes the folder the package `mmfuse.conf` once installed (pyproject.toml maps it), so that
# `importlib.resources.files("mmfuse.conf")` and Hydra's `pkg://mmfuse.conf` find it; it holds no code.
