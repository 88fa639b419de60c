"""Contract report tasks (on webapp.taskapp.app; queues by webapp.taskapp.ROUTES)."""
