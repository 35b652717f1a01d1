"""Storage: the SQLite store (the source of truth) and the indexes rebuilt from it."""
