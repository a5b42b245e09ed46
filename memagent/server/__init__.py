"""memagent as a service: the HTTP API (FastAPI), its tenants and keys, and the inspector page."""
