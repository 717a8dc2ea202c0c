"""Campaign statistics: counters, the seed's response, reconciliation."""
