"""Every table of every domain, loaded in one place for migrations and test setup."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from cloudctl.core.models import Base

__all__ = ["MODEL_MODULES", "load_metadata"]

# A new domain adds its models module here, and an Alembic revision for its tables.
MODEL_MODULES = (
    "cloudctl.org.models",
    "cloudctl.core.audit",
    "cloudctl.core.jobs",
)


def load_metadata() -> MetaData:
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
