"""Training: `train(cfg)` runs one job of `mmfuse train` (task.py), in its run folder's life (run_life.py).

checks       config values named with their key before any work
components   callbacks and loggers from config, recognised by type
job          Hydra's view of this job; threads per job
measure      complexity and robustness after the test
run_life     the run's life as a context manager: record, status, error.txt, W&B finish, release
stages       fit and test, with what each leaves in the record
task         train(): top to bottom
"""
from mmfuse.train.task import train

__all__ = ["train"]
