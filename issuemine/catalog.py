"""The converter catalog: converters are data (a TOML file), loaded and validated here."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from issuemine.errors import IssuemineError
from issuemine.paths import data_dir

STATES = ("open", "closed", "all")
_KEYS = {"repo", "include_labels", "exclude_labels", "state", "own_repos", "description"}


@dataclass(frozen=True)
class Converter:
    """One converter's issue tracker and the rules that select its relevant issues."""

    name: str
    repo: str
    include_labels: tuple[str, ...] = ()
    exclude_labels: tuple[str, ...] = ()
    state: str = "closed"
    own_repos: tuple[str, ...] = field(default=())
    description: str = ""

    @property
    def owner(self) -> str:
        return self.repo.split("/")[0]

    @property
    def repo_name(self) -> str:
        return self.repo.split("/")[1]

    def fixing_repos(self) -> set[str]:
        """Repositories whose closed issues/PRs count as a fix (lower-cased, as GitHub compares)."""
        return {r.lower() for r in (self.own_repos or (self.repo,))}


def default_catalog_paths() -> list[Path]:
    paths = [data_dir() / "converters.toml"]
    extra = os.environ.get("ISSUEMINE_CATALOG")
    if extra:
        paths.extend(Path(p) for p in extra.split(os.pathsep) if p)
    return paths


def _parse_entry(name: str, entry: object, source: Path) -> Converter:
    where = f"{source}: converter {name!r}"
    if not isinstance(entry, dict):
        raise IssuemineError(f"{where} must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise IssuemineError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    repo = entry.get("repo")
    if not isinstance(repo, str) or repo.count("/") != 1 or not all(repo.split("/")):
        raise IssuemineError(f"{where}: 'repo' must be 'owner/name', got {repo!r}")
    state = entry.get("state", "closed")
    if state not in STATES:
        raise IssuemineError(f"{where}: 'state' must be one of {', '.join(STATES)}, got {state!r}")

    def labels(key: str) -> tuple[str, ...]:
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise IssuemineError(f"{where}: {key!r} must be a list of strings")
        return tuple(value)

    return Converter(
        name=name,
        repo=repo,
        include_labels=labels("include_labels"),
        exclude_labels=labels("exclude_labels"),
        state=state,
        own_repos=labels("own_repos") or (repo,),
        description=str(entry.get("description", "")),
    )


def load_catalog(paths: Iterable[Path] | None = None) -> dict[str, Converter]:
    """Load converters from TOML files; later files override earlier entries of the same name."""
    catalog: dict[str, Converter] = {}
    for path in paths if paths is not None else default_catalog_paths():
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IssuemineError(f"converter catalog not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise IssuemineError(f"converter catalog {path} is not valid TOML: {exc}") from None
        entries = doc.get("converters", {})
        if not isinstance(entries, dict):
            raise IssuemineError(f"{path}: [converters] must be a table of converter entries")
        for name, entry in entries.items():
            catalog[name] = _parse_entry(name, entry, Path(path))
    return catalog


def resolve(catalog: dict[str, Converter], names: Iterable[str]) -> list[Converter]:
    """The converters named, or a clear error naming the unknown one and the known ones."""
    chosen = []
    for name in names:
        if name not in catalog:
            known = ", ".join(sorted(catalog))
            raise IssuemineError(f"unknown converter {name!r} (known: {known}); see `issuemine converters`")
        chosen.append(catalog[name])
    return chosen
