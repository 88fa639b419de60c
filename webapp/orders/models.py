"""Orders and notifications models."""
