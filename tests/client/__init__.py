"""Tests of callstats-client (clients/python) against real `callstats serve` processes."""
