"""Training: recipes, the trainer (DDP, AMP, checkpoints, exact resume) and training tasks."""
