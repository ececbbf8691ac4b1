"""The HTTP surface: dashboard page, JSON API and health check."""
