"""Calls: the lifecycle core and event ingestion."""
