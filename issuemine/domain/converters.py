"""Converters are data: one TOML description per converter, loaded and validated here.

Each ``data/converters/NAME.toml`` says everything issuemine knows about one converter, for every
stage that needs it:

- ``[converters.NAME]``: its issue tracker and the study's selection rules (fetch, filter, sample);
- ``[converters.NAME.reproduce]``: how snippets call it, what the sandbox shim wraps, which source
  files are the converter's own (extraction, shim, verdicts, traceback folding);
- ``[[converters.NAME.stage.*]]``: how a failure's stage is read (verdicts, pasted tracebacks).

``data/formats.toml`` holds what every converter to one target format shares (ONNX's checker, its
source paths, the imports snippets take for granted). Adding a converter the harness can re-run is
adding a file, not editing code. Users add their own with ``--catalog FILE`` or ``ISSUEMINE_CATALOG``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: a difftest worker in another environment (difftest run --env)
    import tomli as tomllib  # type: ignore[no-redef]

from issuemine.domain.stages import StageRules, parse_stage_rules
from issuemine.errors import IssuemineError
from issuemine.resources import data_dir

STATES = ("open", "closed", "all")
# Model formats a converter reads (``source``) or writes (``target``).
MODEL_FORMATS = ("onnx", "pytorch", "tensorflow", "keras", "tflite", "paddle", "sklearn", "coreml", "tensorrt", "mxnet")
# Pipeline stages issuemine can run for a converter: fetch and label its issues (every entry), re-run
# their snippets (an entry with [reproduce]), differential-test it (an entry naming its
# `difftest_adapter`: issuemine/difftest/adapters/) and measure converted models (the converters
# issuemine's quality code drives).
QUALITY_CONVERTERS = ("torch.onnx", "tf2onnx", "coremltools")
CHECKS = ("torch", "tensorflow", "load-only", "none")
_KEYS = {
    "repo",
    "include_labels",
    "exclude_labels",
    "state",
    "own_repos",
    "description",
    "source",
    "target",
    "reproduce",
    "stage",
    "difftest_adapter",
}
_REPRODUCE_KEYS = {"source_paths", "related_paths", "imports", "entry", "removed", "command_line", "rename"}


@dataclass(frozen=True)
class EntryPoint:
    """A converter function snippets call: ``call`` is its dotted name (``torch.onnx.export``)."""

    call: str
    check: str = "load-only"  # how the shim compares the converted model: torch | tensorflow | load-only
    exporter: str | None = None  # the exporter it uses by default (torch.onnx: torchscript or dynamo)
    switch_keyword: str | None = None  # a keyword argument that, when true, picks ...
    switch_exporter: str | None = None  # ... this other exporter
    output_arg: int | None = None  # where the output file goes: this positional argument ...
    output_keyword: str | None = None  # ... or this keyword
    # The keyword naming the model file the call reads, where it is not the first positional
    # argument (onnx2tf.convert(input_onnx_file_path=...)): a file the thread does not create.
    model_keyword: str | None = None
    # Arrays the converter reads from its working folder and would otherwise download (onnx2tf's
    # sample images): {"name", "shape", "dtype"}, written with seeded random values before the call.
    workdir_arrays: tuple[dict[str, Any], ...] | None = None

    @property
    def module(self) -> str:
        return self.call.rsplit(".", 1)[0]

    @property
    def attr(self) -> str:
        return self.call.rsplit(".", 1)[1]

    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"\b{re.escape(self.call)}\s*\(")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None} | {"module": self.module, "attr": self.attr}


@dataclass(frozen=True)
class CommandLine:
    """``python -m MODULE ...``: a converter's command line, and the flags that name input files."""

    module: str
    input_flags: tuple[str, ...] = ()
    # How the shim compares what the command wrote with the model it read: "tensorflow" (the
    # SavedModel or Keras file given by an input flag, run in TensorFlow against ONNX Runtime),
    # else only whether ONNX Runtime loads the output.
    check: str = "load-only"
    output_flag: str | None = None  # the flag naming the ONNX file it writes (--output)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class RemovedApi:
    name: str
    pattern: re.Pattern[str]
    keyword: str | None = None  # a removed keyword argument of the entry points: repaired by dropping it


@dataclass(frozen=True)
class Rename:
    """An entry point that moved: old snippets call ``old``; today's converter has ``new``."""

    old: str
    new: str
    why: str = ""
    keywords: dict[str, str] = field(default_factory=dict)  # old keyword -> new ("" drops it)
    modules: dict[str, str] = field(default_factory=dict)  # old import -> new import

    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"\b{re.escape(self.old)}\s*\(")


@dataclass(frozen=True)
class Reproduction:
    """What the reproduction harness needs to know about one converter (or format)."""

    source_paths: tuple[str, ...] = ()
    related_paths: tuple[str, ...] = ()
    imports: dict[str, str] = field(default_factory=dict)
    entries: tuple[EntryPoint, ...] = ()
    removed: tuple[RemovedApi, ...] = ()
    command_line: CommandLine | None = None
    renames: tuple[Rename, ...] = ()


@dataclass(frozen=True)
class Converter:
    """One converter: its issue tracker, the rules selecting its relevant issues, and how it fails."""

    name: str
    repo: str
    include_labels: tuple[str, ...] = ()
    exclude_labels: tuple[str, ...] = ()
    state: str = "closed"
    own_repos: tuple[str, ...] = field(default=())
    description: str = ""
    target: str = "onnx"
    reproduce: Reproduction | None = None
    stages: StageRules = field(default_factory=StageRules)
    source: str = ""  # the model format it reads ("" when the file does not say)
    origin: str = ""  # the catalog file it came from
    # How difftest drives it: a module of issuemine/difftest/adapters/ (dotted name) or a .py file
    # (resolved against the converter file's folder); "" when it cannot be differential-tested.
    difftest_adapter: str = ""

    @property
    def owner(self) -> str:
        return self.repo.split("/")[0]

    @property
    def repo_name(self) -> str:
        return self.repo.split("/")[1]

    def fixing_repos(self) -> set[str]:
        """Repositories whose closed issues/PRs count as a fix (lower-cased, as GitHub compares)."""
        return {r.lower() for r in (self.own_repos or (self.repo,))}

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The pipeline stages issuemine can run for it (see QUALITY_CONVERTERS' comment)."""
        found = ["fetch", "label", "analyze"]
        if self.reproduce is not None:
            found.append("repro")
        if self.difftest_adapter:
            found.append("difftest")
        if self.name in QUALITY_CONVERTERS:
            found.append("quality")
        return tuple(found)

    def catalog_entry(self) -> dict[str, Any]:
        """The tracker part, as `issuemine converters --json` shows it."""
        keys = ("name", "repo", "include_labels", "exclude_labels", "state", "own_repos", "description")
        return {k: getattr(self, k) for k in keys} | {
            "source": self.source,
            "target": self.target,
            "reproducible": self.reproduce is not None,
            "capabilities": list(self.capabilities),
            "file": self.origin,
        }


@dataclass(frozen=True)
class Format:
    """A target format (ONNX): what every converter to it shares."""

    name: str
    reproduce: Reproduction
    stages: StageRules


@dataclass(frozen=True)
class Catalog:
    converters: dict[str, Converter]
    formats: dict[str, Format]


def default_catalog_paths() -> list[Path]:
    paths = [data_dir() / "formats.toml", *sorted((data_dir() / "converters").glob("*.toml"))]
    extra = os.environ.get("ISSUEMINE_CATALOG")
    if extra:
        paths.extend(Path(p) for p in extra.split(os.pathsep) if p)
    return paths


def _strings(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise IssuemineError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise IssuemineError(f"{where} must be a table")
    return value


def _entry_point(raw: Any, where: str) -> EntryPoint:
    raw = _table(raw, where)
    call = raw.get("call")
    if not isinstance(call, str) or "." not in call:
        raise IssuemineError(f"{where}: 'call' must be a dotted name such as 'torch.onnx.export', got {call!r}")
    check = raw.get("check", "load-only")
    if check not in CHECKS:
        raise IssuemineError(f"{where}: 'check' must be one of {', '.join(CHECKS)}, got {check!r}")
    switch = _table(raw.get("switch", {}), f"{where}: switch")
    output = _table(raw.get("output", {}), f"{where}: output")
    model = _table(raw.get("model", {}), f"{where}: model")
    arrays = []
    for i, item in enumerate(raw.get("workdir_array", [])):
        item = _table(item, f"{where}: workdir_array[{i}]")
        name, shape, dtype = item.get("name"), item.get("shape"), item.get("dtype", "float32")
        if not isinstance(name, str) or "/" in name or not isinstance(shape, list):
            raise IssuemineError(f"{where}: workdir_array[{i}] needs a file 'name' (no folder) and a 'shape' list")
        if not all(isinstance(n, int) and 0 < n <= 4096 for n in shape) or dtype not in ("float32", "float64"):
            raise IssuemineError(f"{where}: workdir_array[{i}]: positive int dimensions, dtype float32 or float64")
        arrays.append({"name": name, "shape": shape, "dtype": dtype})
    return EntryPoint(
        call,
        check,
        raw.get("exporter"),
        switch.get("keyword"),
        switch.get("exporter"),
        output.get("position"),
        output.get("keyword"),
        model.get("keyword"),
        tuple(arrays) or None,
    )


def _rename(raw: Any, where: str) -> Rename:
    raw = _table(raw, where)
    if not isinstance(raw.get("old"), str) or not isinstance(raw.get("new"), str):
        raise IssuemineError(f"{where}: a rename needs 'old' and 'new' dotted names")
    keywords = _table(raw.get("keywords", {}), f"{where}: keywords")
    modules = _table(raw.get("modules", {}), f"{where}: modules")
    return Rename(
        raw["old"], raw["new"], str(raw.get("why", "")), {str(k): str(v) for k, v in keywords.items()}, dict(modules)
    )


def _reproduction(raw: Any, where: str) -> Reproduction:
    raw = _table(raw, where)
    unknown = set(raw) - _REPRODUCE_KEYS
    if unknown:
        raise IssuemineError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    imports = _table(raw.get("imports", {}), f"{where}: imports")
    removed = []
    for i, item in enumerate(raw.get("removed", [])):
        item = _table(item, f"{where}: removed[{i}]")
        try:
            removed.append(RemovedApi(str(item["name"]), re.compile(item["pattern"]), item.get("keyword")))
        except (KeyError, re.error) as exc:
            raise IssuemineError(f"{where}: removed[{i}] needs a name and a valid pattern ({exc})") from None
    cli = raw.get("command_line")
    command_line = None
    if cli is not None:
        cli = _table(cli, f"{where}: command_line")
        if not isinstance(cli.get("module"), str):
            raise IssuemineError(f"{where}: command_line needs a 'module'")
        unknown = set(cli) - {"module", "input_flags", "check", "output_flag"}
        if unknown:
            raise IssuemineError(f"{where}: command_line has unknown key(s) {', '.join(sorted(unknown))}")
        command_line = CommandLine(
            cli["module"],
            _strings(cli, "input_flags", f"{where}: command_line"),
            str(cli.get("check", "load-only")),
            str(cli["output_flag"]) if cli.get("output_flag") else None,
        )
    return Reproduction(
        source_paths=_strings(raw, "source_paths", where),
        related_paths=_strings(raw, "related_paths", where),
        imports={str(k): str(v) for k, v in imports.items()},
        entries=tuple(_entry_point(e, f"{where}: entry[{i}]") for i, e in enumerate(raw.get("entry", []))),
        removed=tuple(removed),
        command_line=command_line,
        renames=tuple(_rename(r, f"{where}: rename[{i}]") for i, r in enumerate(raw.get("rename", []))),
    )


def _parse_entry(name: str, entry: object, source: Path) -> Converter:
    where = f"{source}: converter {name!r}"
    entry = _table(entry, where)
    unknown = set(entry) - _KEYS
    if unknown:
        raise IssuemineError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    repo = entry.get("repo")
    if not isinstance(repo, str) or repo.count("/") != 1 or not all(repo.split("/")):
        raise IssuemineError(f"{where}: 'repo' must be 'owner/name', got {repo!r}")
    state = entry.get("state", "closed")
    if state not in STATES:
        raise IssuemineError(f"{where}: 'state' must be one of {', '.join(STATES)}, got {state!r}")
    for key, default in (("source", ""), ("target", "onnx")):
        value = entry.get(key, default)
        if value != default and value not in MODEL_FORMATS:
            raise IssuemineError(f"{where}: '{key}' must be one of {', '.join(MODEL_FORMATS)}, got {value!r}")
    return Converter(
        name=name,
        repo=repo,
        include_labels=_strings(entry, "include_labels", where),
        exclude_labels=_strings(entry, "exclude_labels", where),
        state=state,
        own_repos=_strings(entry, "own_repos", where) or (repo,),
        description=str(entry.get("description", "")),
        target=str(entry.get("target", "onnx")),
        reproduce=_reproduction(entry["reproduce"], f"{where}: reproduce") if "reproduce" in entry else None,
        stages=parse_stage_rules(entry.get("stage", {}), f"{where}: stage"),
        source=str(entry.get("source", "")),
        origin=str(source),
        difftest_adapter=_adapter_spec(entry.get("difftest_adapter", ""), source, where),
    )


def _adapter_spec(value: object, source: Path, where: str) -> str:
    """A dotted module name as written; a .py path made absolute against the converter file's folder."""
    if not isinstance(value, str):
        raise IssuemineError(f"{where}: 'difftest_adapter' must be a module name or a .py file, got {value!r}")
    if value.endswith(".py"):
        path = (source.parent / value).resolve()
        if not path.is_file():
            raise IssuemineError(f"{where}: difftest_adapter {value!r}: no such file ({path})")
        return str(path)
    if value and not all(part.isidentifier() for part in value.split(".")):
        raise IssuemineError(f"{where}: 'difftest_adapter' {value!r} is neither a module name nor a .py file")
    return value


def _parse_format(name: str, entry: object, source: Path) -> Format:
    where = f"{source}: format {name!r}"
    entry = dict(_table(entry, where))
    stages = parse_stage_rules(entry.pop("stage", {}), f"{where}: stage")
    return Format(name, _reproduction(entry, where), stages)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IssuemineError(f"converter catalog not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise IssuemineError(f"converter catalog {path} is not valid TOML: {exc}") from None


def load_full_catalog(paths: Iterable[Path] | None = None) -> Catalog:
    """Converters and formats from TOML files; later files override earlier entries of the same name."""
    converters: dict[str, Converter] = {}
    formats: dict[str, Format] = {}
    for path in paths if paths is not None else default_catalog_paths():
        doc = _read(Path(path))
        entries = doc.get("converters", {})
        if not isinstance(entries, dict):
            raise IssuemineError(f"{path}: [converters] must be a table of converter entries")
        for name, entry in entries.items():
            parsed = _parse_entry(name, entry, Path(path))
            # The same file reached by another path (data/ and the package's link to it) replaces nothing.
            if name in converters and Path(converters[name].origin).resolve() != Path(parsed.origin).resolve():
                _tell_override(name, converters[name].origin, parsed.origin)
            converters[name] = parsed
        for name, entry in _table(doc.get("formats", {}), f"{path}: [formats]").items():
            formats[name] = _parse_format(name, entry, Path(path))
    return Catalog(converters, formats)


_overrides_told: set[tuple[str, str]] = set()


def _tell_override(name: str, earlier: str, later: str) -> None:
    """A user's file that replaces a bundled entry of the same name says so, once per command: the
    processes it starts (the re-run server, workers) inherit that it was told."""
    import os
    import sys

    told = f"{name}={later}"
    inherited = os.environ.get("ISSUEMINE_OVERRIDES_TOLD", "").split(os.pathsep)
    if (name, later) not in _overrides_told and told not in inherited:
        _overrides_told.add((name, later))
        os.environ["ISSUEMINE_OVERRIDES_TOLD"] = os.pathsep.join(filter(None, [*inherited, told]))
        print(f"note: {later} replaces the converter {name!r} of {earlier}", file=sys.stderr)


def load_catalog(paths: Iterable[Path] | None = None) -> dict[str, Converter]:
    """The converters of the catalog files, by name (the tracker part most stages need)."""
    return load_full_catalog(paths).converters


def resolve(catalog: dict[str, Converter], names: Iterable[str]) -> list[Converter]:
    """The converters named, or a clear error naming the unknown one and the known ones."""
    chosen = []
    for name in names:
        if name not in catalog:
            known = ", ".join(sorted(catalog))
            raise IssuemineError(f"unknown converter {name!r} (known: {known}); see `issuemine converters`")
        chosen.append(catalog[name])
    return chosen


@dataclass(frozen=True)
class Knowledge:
    """Everything the catalog says about converting code, merged over its converters and formats:
    what extraction recognizes, what the shim wraps, whose frames count, how stages are read."""

    entries: tuple[EntryPoint, ...]
    imports: dict[str, str]
    removed: tuple[RemovedApi, ...]
    renames: tuple[Rename, ...]
    command_lines: tuple[CommandLine, ...]
    converter_paths: tuple[str, ...]  # the converters' own code: a failure here reached a converter
    shown_paths: tuple[str, ...]  # what a folded traceback keeps: converters, formats, related code
    stages: StageRules
    # Each converter's own rules, then the formats': how a failure of a known converter is read (a
    # difftest run), so another converter's rules cannot place it (tf2onnx reads Keras frames as
    # loading the model; onnx2tf's operators run through Keras layers).
    own_stages: dict[str, StageRules] = field(default_factory=dict)

    def stages_for(self, converter: str) -> StageRules:
        """The rules that read a failure of ``converter`` (every converter's, for one without its own)."""
        return self.own_stages.get(converter, self.stages)

    def touches_converter(self, path: str) -> bool:
        path = path.replace("\\", "/")
        return any(p in path for p in self.converter_paths)

    def shown(self, path: str) -> bool:
        path = path.replace("\\", "/")
        return any(p in path for p in self.shown_paths)


def merge(catalog: Catalog) -> Knowledge:
    parts = [c.reproduce for c in catalog.converters.values() if c.reproduce]
    formats = [f.reproduce for f in catalog.formats.values()]
    stages = StageRules()
    # A format's frame rules (ONNX's checker and shape inference) come after every converter's: see
    # issuemine.domain.stages.
    late = StageRules()
    for f in catalog.formats.values():
        late = late.merged(f.stages.as_late())
    for c in catalog.converters.values():
        stages = stages.merged(c.stages)
    stages = stages.merged(late)
    # A converter without rules of its own (onnx2torch, whose round trip runs torch.onnx first) keeps
    # every converter's.
    own_stages = {name: c.stages.merged(late) for name, c in catalog.converters.items() if c.stages != StageRules()}
    imports: dict[str, str] = {}
    for part in parts + formats:
        imports.update(part.imports)
    converter_paths = tuple(dict.fromkeys(p for part in parts for p in part.source_paths))
    shown = converter_paths + tuple(p for part in formats + parts for p in (*part.source_paths, *part.related_paths))
    return Knowledge(
        entries=tuple(e for part in parts for e in part.entries),
        imports=imports,
        removed=tuple(r for part in parts for r in part.removed),
        renames=tuple(r for part in parts for r in part.renames),
        command_lines=tuple(part.command_line for part in parts if part.command_line),
        converter_paths=converter_paths,
        shown_paths=tuple(dict.fromkeys(shown)),
        stages=stages,
        own_stages=own_stages,
    )


@lru_cache(maxsize=8)
def _knowledge(paths: tuple[Path, ...]) -> Knowledge:
    return merge(load_full_catalog(paths))


def knowledge(paths: Iterable[Path] | None = None) -> Knowledge:
    """The merged knowledge of the default catalog (bundled files and ``ISSUEMINE_CATALOG``), cached."""
    return _knowledge(tuple(paths if paths is not None else default_catalog_paths()))
