"""The web app: the built-in dashboard page and its JSON API."""
