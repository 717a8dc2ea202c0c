"""Campaigns and their contacts."""
