"""The page handlers, one module per page family; ``onboarding.web.app`` routes to them."""
