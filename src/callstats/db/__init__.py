"""Storage: schema, engine and migrations."""
