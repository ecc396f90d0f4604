"""Test doubles for issuemine and its users: a GitHub REST server on loopback (``ghserver``)."""
