"""Helpers that the course notebooks import: plotting and data."""
