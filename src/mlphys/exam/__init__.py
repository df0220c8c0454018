"""Exams: per-student variants delivered through the exchange, and a time window that holds."""
