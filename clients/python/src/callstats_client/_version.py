"""The client's version (the distribution callstats-client)."""

__version__ = "0.1.0"
