"""A simulated cohort of submissions: the reference, the blank release, typical mistakes and attacks."""
