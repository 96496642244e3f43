"""Reporting: read run records from disk, never training code."""
