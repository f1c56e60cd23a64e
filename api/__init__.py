"""The HTTP API of cloudctl (FastAPI)."""
