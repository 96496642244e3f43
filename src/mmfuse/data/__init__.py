"""LightningDataModules and the batch contract (see base.py)."""
