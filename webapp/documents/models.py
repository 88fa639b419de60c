"""Documents models."""
