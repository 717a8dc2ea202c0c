"""The demo: a simulated dialer feeding a live campaign."""
