"""The coordinators' web page (``onboarding serve``): see ``onboarding.web.app``."""

from __future__ import annotations

from onboarding.web.app import create_app

__all__ = ["create_app"]
