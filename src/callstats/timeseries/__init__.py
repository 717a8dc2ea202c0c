"""Campaign history: per-bucket counts in any time zone, from per-minute counters."""
