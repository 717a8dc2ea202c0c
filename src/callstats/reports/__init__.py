"""Drill-down (every contact and call of a campaign) and exports."""
