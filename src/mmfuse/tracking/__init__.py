"""Run folders, run records (run.json), and W&B set-up."""
