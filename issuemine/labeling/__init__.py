"""Labeling: raters, the terminal session, assignment plans, agreement and adjudication."""
