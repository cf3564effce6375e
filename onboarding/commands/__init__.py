"""The command groups of ``onboarding``, one module each, loaded lazily by ``cli.py``."""
