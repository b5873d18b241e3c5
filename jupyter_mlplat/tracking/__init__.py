"""Tracking inside steps and notebooks: params, metrics (later: models, slices, evaluation)."""
