"""Every table of every domain, loaded in one place for migrations and test setup."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from cloudctl.core.models import Base

__all__ = ["MODEL_MODULES", "include_name", "load_metadata"]

# A new domain adds its models module here, and an Alembic revision for its tables.
MODEL_MODULES = (
    "cloudctl.org.models",
    "cloudctl.core.audit",
    "cloudctl.core.jobs",
    "cloudctl.core.attachments",
    "cloudctl.core.rectification",
    "cloudctl.notify.models",
    "cloudctl.compute.models",
    "cloudctl.billing.models",
    "cloudctl.reclaim.models",
    "cloudctl.extranet.models",
    "cloudctl.security.models",
)


def load_metadata() -> MetaData:
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's filter: the simulator cloud keeps its own sim_ tables, which are not cloudctl's schema."""
    return not (type_ == "table" and name is not None and name.startswith("sim_"))
