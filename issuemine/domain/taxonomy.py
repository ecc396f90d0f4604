"""The labeling taxonomy: versioned codebooks (TOML files in a directory), loaded and validated.

A taxonomy directory holds ``taxonomy.toml`` (name, version, the dimensions in asking order) and one
``<dimension>.toml`` codebook per dimension. Each entry has a stable ``code``, the study's codebook
``number``, a ``name``, ``definition``, ``guidance``, ``example`` and ``aliases`` (the spellings of
the study's sheets). An entry may have ``subtypes`` (the cause's sub-causes), whose codes are
stored as ``<cause>.<subtype>`` in the ``subcause`` label dimension.

Values from files are resolved through codes, numbers, names and aliases, case-insensitively, so
"Incompatability", "incompatibility" and 2 all mean the same cause.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from issuemine.errors import IssuemineError
from issuemine.resources import taxonomy_dir

SUBCAUSE = "subcause"


@dataclass(frozen=True)
class Code:
    code: str
    name: str
    number: int | None = None
    definition: str = ""
    guidance: str = ""
    example: str = ""
    aliases: tuple[str, ...] = ()
    parent: str | None = None  # the cause a subtype belongs to
    subtypes: tuple[Code, ...] = ()
    subtype_column: str | None = None
    catch_all: bool = False

    def spellings(self) -> list[str]:
        names = [self.code, self.name, *self.aliases]
        if self.number is not None:
            names.append(str(self.number))
        if self.parent:
            names.append(self.code.split(".", 1)[1])
        return names


@dataclass
class Dimension:
    name: str
    question: str
    codes: list[Code]
    subtype_question: str = "Which kind of {name}?"
    _lookup: dict[str, Code] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for code in self.codes:
            for spelling in code.spellings():
                self._lookup.setdefault(_norm(spelling), code)

    def resolve(self, value: Any) -> Code | None:
        if value is None:
            return None
        return self._lookup.get(_norm(str(value)))

    def get(self, code: str) -> Code:
        for c in self.codes:
            if c.code == code:
                return c
        raise KeyError(code)


def _norm(value: str) -> str:
    text = " ".join(str(value).strip().lower().replace("_", " ").split())
    if text.endswith(".0") and text[:-2].isdigit():  # numbers read from spreadsheets as floats
        text = text[:-2]
    return text


@dataclass
class Taxonomy:
    name: str
    version: str
    description: str
    dimensions: dict[str, Dimension]
    path: Path

    @property
    def order(self) -> list[str]:
        return list(self.dimensions)

    def dimension(self, name: str) -> Dimension:
        if name not in self.dimensions:
            raise IssuemineError(f"unknown dimension {name!r} (known: {', '.join([*self.dimensions, SUBCAUSE])})")
        return self.dimensions[name]

    def causes_with_subtypes(self) -> list[Code]:
        return [c for c in self.dimensions.get("cause", Dimension("cause", "", [])).codes if c.subtypes]

    def subtypes(self, cause_code: str | None) -> list[Code]:
        if not cause_code or "cause" not in self.dimensions:
            return []
        try:
            return list(self.dimensions["cause"].get(cause_code).subtypes)
        except KeyError:
            return []

    def resolve_subtype(self, cause_code: str, value: Any) -> Code | None:
        for sub in self.subtypes(cause_code):
            if _norm(str(value)) in {_norm(s) for s in sub.spellings()}:
                return sub
        return None

    def all_codes(self, dimension: str) -> list[str]:
        if dimension == SUBCAUSE:
            return [s.code for c in self.causes_with_subtypes() for s in c.subtypes]
        return [c.code for c in self.dimension(dimension).codes]

    def label_dimensions(self) -> list[str]:
        """The dimensions a label has: the taxonomy's, plus ``subcause`` when causes have subtypes."""
        return [*self.dimensions, *([SUBCAUSE] if self.causes_with_subtypes() else [])]

    def display(self, dimension: str, code: str | None) -> str:
        if code is None:
            return "-"
        if dimension == SUBCAUSE:
            cause, _, _ = code.partition(".")
            sub = self.resolve_subtype(cause, code.split(".", 1)[-1])
            return sub.name if sub else code
        found = self.dimensions[dimension].resolve(code)
        return found.name if found else code


def default_taxonomy_dir() -> Path:
    return taxonomy_dir()


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IssuemineError(f"taxonomy file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise IssuemineError(f"taxonomy file {path} is not valid TOML: {exc}") from None


def _code(entry: dict[str, Any], where: str, problems: list[str], parent: str | None = None) -> Code | None:
    missing = [k for k in ("code", "name") if not entry.get(k)]
    if missing:
        problems.append(f"{where}: entry {entry.get('code') or entry.get('name') or '?'} lacks {', '.join(missing)}")
        return None
    number = entry.get("number")
    if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 1):
        problems.append(f"{where}: {entry['code']}: 'number' must be a positive integer, not {number!r}")
        number = None
    code = f"{parent}.{entry['code']}" if parent else str(entry["code"])
    subtypes = tuple(
        sub for sub in (_code(s, where, problems, parent=code) for s in entry.get("subtypes", [])) if sub is not None
    )
    return Code(
        code=code,
        name=str(entry["name"]),
        number=number,
        definition=str(entry.get("definition", "")),
        guidance=str(entry.get("guidance", "")),
        example=str(entry.get("example", "")),
        aliases=tuple(str(a) for a in entry.get("aliases", [])),
        parent=parent,
        subtypes=subtypes,
        subtype_column=entry.get("subtype_column"),
        catch_all=bool(entry.get("catch_all", False)),
    )


def _check_dimension(dim: Dimension, where: str, problems: list[str]) -> None:
    def unique(codes: list[Code], what: str) -> None:
        seen: dict[Any, str] = {}
        for c in codes:
            for key, label in ((c.code, "code"), (c.number, "number")):
                if key is None:
                    continue
                if (label, key) in seen:
                    problems.append(f"{what}: duplicate {label} {key!r} ({seen[(label, key)]} and {c.code})")
                seen[(label, key)] = c.code
        owners: dict[str, str] = {}
        for c in codes:
            for spelling in c.spellings():
                key = _norm(spelling)
                if key in owners and owners[key] != c.code:
                    problems.append(f"{what}: alias {spelling!r} of {c.code} also names {owners[key]}")
                owners.setdefault(key, c.code)

    unique(dim.codes, where)
    for code in dim.codes:
        if code.subtypes:
            unique(list(code.subtypes), f"{where}: subtypes of {code.code}")
            for sub in code.subtypes:
                if sub.parent != code.code or not sub.code.startswith(code.code + "."):
                    problems.append(f"{where}: subtype {sub.code} does not belong to {code.code}")
    for code in dim.codes:
        for alias in code.aliases:
            resolved = dim.resolve(alias)
            if resolved is None or resolved.code != code.code:
                problems.append(
                    f"{where}: alias {alias!r} of {code.code} resolves to {resolved.code if resolved else None}"
                )


def load_taxonomy(directory: Path | None = None, *, strict: bool = True) -> tuple[Taxonomy, list[str]]:
    """The taxonomy in ``directory`` and the problems found; ``strict`` raises on any problem."""
    root = Path(directory) if directory else default_taxonomy_dir()
    if not root.is_dir():
        raise IssuemineError(f"taxonomy directory not found: {root}")
    meta = _read(root / "taxonomy.toml")
    problems: list[str] = []
    for key in ("name", "version", "dimensions"):
        if not meta.get(key):
            problems.append(f"{root / 'taxonomy.toml'}: missing {key!r}")
    dimensions: dict[str, Dimension] = {}
    for name in meta.get("dimensions", []):
        if name == SUBCAUSE:
            problems.append(f"{root / 'taxonomy.toml'}: {SUBCAUSE!r} is derived from cause subtypes, not a file")
            continue
        path = root / f"{name}.toml"
        doc = _read(path)
        codes = [c for c in (_code(e, str(path), problems) for e in doc.get("entry", [])) if c is not None]
        if not codes:
            problems.append(f"{path}: no [[entry]] codes")
        dim = Dimension(
            name=name,
            question=str(doc.get("question", f"Which {name}?")),
            codes=codes,
            subtype_question=str(doc.get("subtype_question", "Which kind of {name}?")),
        )
        _check_dimension(dim, str(path), problems)
        dimensions[name] = dim
    taxonomy = Taxonomy(
        name=str(meta.get("name", root.name)),
        version=str(meta.get("version", "")),
        description=str(meta.get("description", "")),
        dimensions=dimensions,
        path=root,
    )
    if strict and problems:
        raise IssuemineError(f"taxonomy {root} is invalid: {problems[0]} (run `issuemine taxonomy check`)")
    return taxonomy, problems


def taxonomy(directory: Path | None = None) -> Taxonomy:
    return load_taxonomy(directory)[0]


# -- label files -----------------------------------------------------------------------------------


def _value(row: dict[str, Any], column: str) -> tuple[str | None, Any]:
    """The non-empty value of ``column`` or ``column_code`` (the name wins for messages)."""
    for key in (column, f"{column}_code"):
        value = row.get(key)
        if value is not None and str(value).strip() != "":
            return key, value
    return None, None


def parse_label_row(taxonomy: Taxonomy, row: dict[str, Any], where: str) -> dict[str, str]:
    """The codes of one row of a labels file (study-sheet names, codes or codebook numbers, and a
    cause's sub-type column), resolved through the taxonomy; unknown values raise with ``where``."""
    codes: dict[str, str] = {}
    for name, dim in taxonomy.dimensions.items():
        resolved = []
        for key in (name, f"{name}_code"):
            value = row.get(key)
            if value is None or str(value).strip() == "":
                continue
            code = dim.resolve(value)
            if code is None:
                raise IssuemineError(f"{where}: unknown {name} {str(value)!r} in column {key!r}")
            resolved.append(code.code)
        if len(set(resolved)) > 1:
            raise IssuemineError(f"{where}: {name} columns disagree ({' vs '.join(resolved)})")
        if resolved:
            codes[name] = resolved[0]
    cause = codes.get("cause")
    for family in taxonomy.causes_with_subtypes():
        column = family.subtype_column or family.code
        found, value = _value(row, column)
        if found is None:
            continue
        if cause != family.code:
            raise IssuemineError(f"{where}: column {found!r} is set but the cause is {cause!r}, not {family.code!r}")
        sub = taxonomy.resolve_subtype(family.code, value)
        if sub is None:
            raise IssuemineError(f"{where}: unknown {column} {str(value)!r} for cause {family.code}")
        codes[SUBCAUSE] = sub.code
    found, value = _value(row, SUBCAUSE)
    if found is not None and SUBCAUSE not in codes:
        sub = taxonomy.resolve_subtype(cause or "", str(value).split(".")[-1])
        if sub is None:
            raise IssuemineError(f"{where}: unknown subcause {str(value)!r} for cause {cause!r}")
        codes[SUBCAUSE] = sub.code
    return codes


@dataclass
class LabelRow:
    """One row of a labels file: where it is (for messages), its columns, its issue and its codes."""

    where: str
    row: dict[str, Any]
    repo: str
    number: int
    codes: dict[str, str]


def read_label_file(path: Path, taxonomy: Taxonomy) -> Iterator[LabelRow]:
    """The rows of a labels file (CSV, JSON or JSONL: url or repo+number, labels as study names,
    codes or codebook numbers); a bad row raises with its line, so a caller can refuse the file."""
    from issuemine.domain.addresses import issue_address
    from issuemine.record_files import read_records

    for where_no, row in read_records(path):
        where = f"{path}, line {where_no}"
        if not isinstance(row, dict):
            raise IssuemineError(f"{where}: expected a record with columns")
        try:
            repo, number = issue_address(row)
        except ValueError as exc:
            raise IssuemineError(f"{where}: {exc}") from None
        codes = parse_label_row(taxonomy, row, where)
        if not codes:
            raise IssuemineError(f"{where}: no label in any of the columns {', '.join(taxonomy.label_dimensions())}")
        yield LabelRow(where, row, repo, number, codes)
