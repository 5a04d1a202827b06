"""Locking: runtime profile -> pinned, hashed constraints (``constraints/<name>.txt``)."""
