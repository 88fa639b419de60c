"""Quizzes tasks (registered on webapp.taskapp.app)."""
