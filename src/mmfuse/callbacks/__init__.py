"""Every Lightning callback (and the checkpoint plugin) mmfuse adds to a run.

checkpoints    AtomicCheckpointIO (a kill mid-write never replaces a good checkpoint), InterruptCheckpoint (Ctrl-C)
divergence     DivergenceGuard: a non-finite loss or weights end the run as `diverged`
epoch_timer    EpochTimer: wall time per training epoch
history        RecordHistory: the run record's per-epoch metrics
progress       ProgressBar: Lightning's RichProgressBar, redrawn only as often as it shows
resume_state   ResumeState: the random state an exact resume needs
"""
