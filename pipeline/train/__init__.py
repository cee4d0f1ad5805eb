"""Training components: cached datasets, optimiser/scheduler, checkpoints, the fold loop, DDP."""
