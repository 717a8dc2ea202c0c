"""Live statistics: the change feed turned into Server-Sent Events."""
