"""Helpers of the baselines' training tasks: their losses and training targets (see ``baseline_tasks``)."""
