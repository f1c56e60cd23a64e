"""The core: configuration, database, base model, errors, audit, principals and jobs."""
