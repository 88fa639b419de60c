"""Contract reports models."""
