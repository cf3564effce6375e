"""Emails from the outbox: settings (config), rendering (render), handing over (send), the
claim-render-send-record loop (runner) and the scheduler that wakes it (scheduler).

The outbox rows themselves live in ``onboarding.outbox``: this package reads due rows through it
and records results through it; ``onboarding`` never renders or sends. See docs/notifications.md.
"""
