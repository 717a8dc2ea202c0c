"""Load and scale benchmarks of callstats: `make bench` (full) and `make bench-quick`."""
