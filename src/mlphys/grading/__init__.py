"""The tamper-proof grading engine that plugs into nbgrader (see nbgrader_config.py)."""
