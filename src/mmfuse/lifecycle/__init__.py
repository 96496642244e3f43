"""A run's life after training: reproduce it from its snapshot, evaluate its checkpoints (resume lives in train.py)."""
