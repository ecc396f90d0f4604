"""Tolerance policies for comparing a converted model's outputs with the framework's.

Data (``data/tolerance-policies.toml``), shared by the reproduction harness and differential
testing: an output is within a policy when |converted - framework| <= atol + rtol * |framework|.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from issuemine.errors import IssuemineError
from issuemine.resources import data_dir


@dataclass(frozen=True)
class Policy:
    name: str
    atol: float
    rtol: float
    source: str = ""
    aliases: tuple[str, ...] = ()  # earlier names, still found in stored runs and campaigns

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "atol": self.atol, "rtol": self.rtol}


@dataclass(frozen=True)
class Policies:
    policies: tuple[Policy, ...]
    default: str

    def get(self, name: str | None) -> Policy:
        name = name or self.default
        for policy in self.policies:
            if policy.name == name or name in policy.aliases:
                return policy
        raise IssuemineError(f"unknown tolerance policy {name!r}; known: {', '.join(p.name for p in self.policies)}")


def load_policies(path: Path | None = None) -> Policies:
    path = path or data_dir() / "tolerance-policies.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        policies = tuple(
            Policy(p["name"], float(p["atol"]), float(p["rtol"]), p.get("source", ""), tuple(p.get("aliases", ())))
            for p in doc["policy"]
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise IssuemineError(f"cannot read tolerance policies from {path}: {exc}") from exc
    default = doc.get("default", policies[0].name)
    return Policies(policies, default)


def stored_verdict(verdicts: dict[str, Any], policy: Policy) -> Any:
    """A stored per-policy verdict, found under the policy's name or an earlier one (None: absent)."""
    for name in (policy.name, *policy.aliases):
        if name in verdicts:
            return verdicts[name]
    return None
