"""issuemine: mine, label, analyze and reproduce deep-learning model converter failures."""

__version__ = "0.1.0"
