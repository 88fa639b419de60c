"""Quizzes models."""
