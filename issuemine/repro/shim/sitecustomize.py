"""Loaded by every interpreter the sandbox starts (the shim directory is on PYTHONPATH)."""

import issuemine_shim

issuemine_shim.install()
