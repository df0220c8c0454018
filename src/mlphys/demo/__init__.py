"""A simulated cohort of submissions: the reference, the blank release, typical mistakes and attacks."""

# The demo's secret, used only where the grader's environment sets none (never in a real course: from a public
# secret anyone can compute the hidden test data and every student's exam variant).
DEMO_SECRET = "ml4physics-demo-secret"
