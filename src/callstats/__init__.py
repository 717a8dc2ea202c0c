"""callstats: exact, instant statistics for outbound voice-call campaigns."""

__version__ = "0.1.0"
