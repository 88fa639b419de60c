"""Documents tasks (registered on webapp.taskapp.app)."""
