"""A run folder and its record (run.json): the contract every other part of mmfuse reads.

folder    RunFolder: the layout of a run folder and the only code that reads or writes run.json (under its lock)
schema    the record's sections as TypedDicts, its version, and the check made on every write
"""
