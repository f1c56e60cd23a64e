"""Alembic migrations of the cloudctl database, shipped inside the package."""
