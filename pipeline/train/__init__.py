"""Training components: cached datasets, optimiser/scheduler, the fold loop, DDP."""
