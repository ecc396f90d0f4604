"""Where bundled data lives.

The repository's ``data/`` folder sits next to the package in a checkout (and an editable install);
``ISSUEMINE_DATA`` points elsewhere for other installs.
"""

import os
from pathlib import Path


def data_dir() -> Path:
    env = os.environ.get("ISSUEMINE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data"
