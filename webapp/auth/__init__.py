"""Users, roles, API tokens, sign-in and the audit log (the ``auth`` blueprint)."""

from __future__ import annotations

from .access import Identity, audit, current_identity, login_manager, requires
from .views import auth

__all__ = ["Identity", "audit", "auth", "current_identity", "login_manager", "requires"]
