"""Operator sequences of converted models (the study's Table 12) and their coverage by a test suite.

A model is a DAG of operators. Its *sequences* are the operator types along each simple path from
a node without predecessors (it reads only graph inputs and constants) to a node without
successors (it produces a graph output). Over a campaign:

- operators seen in mismatched vs in correct models;
- sequences shared by mismatched models (in two or more of them), shared by mismatched and correct
  models, and present only in mismatched models;
- each mismatch-only sequence reduced to its shortest contiguous part that no correct model has;
- how many mismatched models carry at least one mismatch-only sequence (the study: 312 of 320).

The coverage of a set of models (say, a converter's own test models) is the share of the reduced
mismatch-only sequences that occur, contiguously, along one of their paths: the study's proposed
metric for how well a test suite exercises the operator combinations that break conversion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Sequence_ = tuple[str, ...]
MAX_PATHS = 20_000  # per model: a 100-node DAG can have very many paths; past this, the rest are not read


@dataclass
class OpGraph:
    """Operators by node id, and which node feeds which."""

    ops: dict[str, str]
    edges: list[tuple[str, str]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """A compact JSON form (operator types in node order, edges as index pairs), as stored."""
        index = {node: i for i, node in enumerate(self.ops)}
        return {"ops": list(self.ops.values()), "edges": [[index[a], index[b]] for a, b in self.edges]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OpGraph:
        ops = {str(i): op for i, op in enumerate(record["ops"]) if op not in SKIPPED}
        edges = [(str(a), str(b)) for a, b in record["edges"] if str(a) in ops and str(b) in ops]
        return cls(ops, edges)

    def sequences(self, limit: int = MAX_PATHS) -> set[Sequence_]:
        successors: dict[str, list[str]] = {node: [] for node in self.ops}
        has_predecessor: set[str] = set()
        for src, dst in self.edges:
            successors[src].append(dst)
            has_predecessor.add(dst)
        found: set[Sequence_] = set()
        budget = [limit]

        def walk(node: str, path: list[str]) -> None:
            if budget[0] <= 0:
                return
            path.append(self.ops[node])
            if not successors[node]:
                found.add(tuple(path))
                budget[0] -= 1
            for nxt in successors[node]:
                walk(nxt, path)
            path.pop()

        for source in self.ops:
            if source not in has_predecessor:
                walk(source, [])
        return found


SKIPPED = frozenset({"Constant"})  # data, not computation: TorchScript emits them, dynamo and tf2onnx use initializers


def onnx_graph(model: Any) -> OpGraph:
    """The operator DAG of an ONNX model (``onnx.ModelProto``): node i feeds node j when one of i's
    outputs is one of j's inputs. ``Constant`` nodes are left out, so that the same computation has
    the same sequences whichever exporter wrote it."""
    producer: dict[str, str] = {}
    ops: dict[str, str] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type in SKIPPED:
            continue
        key = f"{i}:{node.name}"
        ops[key] = node.op_type
        for out in node.output:
            producer[out] = key
    edges = []
    for i, node in enumerate(model.graph.node):
        key = f"{i}:{node.name}"
        if key in ops:
            edges += [(producer[name], key) for name in node.input if name in producer]
    return OpGraph(ops, edges)


def load_onnx_graph(path: Path) -> OpGraph:
    import onnx

    return onnx_graph(onnx.load(str(path), load_external_data=False))


def walks(graph: OpGraph, length: int) -> set[Sequence_]:
    """The operator types along every path of ``length`` nodes. In a DAG every path extends to one
    from a source to a sink, so these are exactly the contiguous parts of that length of the
    graph's sequences, found without listing the (possibly very many) whole sequences."""
    successors: dict[str, list[str]] = {node: [] for node in graph.ops}
    for src, dst in graph.edges:
        successors[src].append(dst)
    frontier: set[tuple[str, Sequence_]] = {(node, (op,)) for node, op in graph.ops.items()}
    for _ in range(length - 1):
        frontier = {(nxt, (*seq, graph.ops[nxt])) for node, seq in frontier for nxt in successors[node]}
    return {seq for _, seq in frontier}


class PartIndex:
    """The contiguous parts of a set of graphs' sequences, by length, built as lengths are asked."""

    def __init__(self, graphs: list[OpGraph]) -> None:
        self.graphs = graphs
        self.by_length: dict[int, set[Sequence_]] = {}

    def __contains__(self, part: Sequence_) -> bool:
        n = len(part)
        if n not in self.by_length:
            self.by_length[n] = set().union(*(walks(g, n) for g in self.graphs)) if self.graphs else set()
        return part in self.by_length[n]


def _parts(sequence: Sequence_) -> Iterable[Sequence_]:
    """Contiguous parts of a sequence, shortest first."""
    for length in range(1, len(sequence) + 1):
        for start in range(len(sequence) - length + 1):
            yield sequence[start : start + length]


def reduce(sequence: Sequence_, seen: set[Sequence_] | PartIndex) -> Sequence_:
    """The shortest contiguous part of ``sequence`` not in ``seen`` (the parts of correct models'
    sequences); the whole sequence when every shorter part occurs there too."""
    for part in _parts(sequence):
        if part not in seen:
            return part
    return sequence


@dataclass
class Table12:
    mismatched_models: int
    correct_models: int
    ops_mismatched: list[str]
    ops_correct: list[str]
    ops_only_mismatched: list[str]
    shared_by_mismatched: int  # sequences in two or more mismatched models
    shared_with_correct: int  # sequences in mismatched and correct models
    only_mismatched: int  # sequences in mismatched models and no correct one
    reduced_only_mismatched: list[Sequence_]  # each reduced to its shortest mismatch-only part
    models_with_only_mismatched: int  # mismatched models with at least one mismatch-only sequence
    carried: dict[Sequence_, int] = field(default_factory=dict)  # reduced sequence -> mismatched models with it

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["reduced_only_mismatched"] = [" → ".join(s) for s in self.reduced_only_mismatched]
        data["carried"] = {" → ".join(s): n for s, n in self.carried.items()}
        return data


def table_12(mismatched: list[OpGraph], correct: list[OpGraph]) -> Table12:
    mismatched_seqs = [g.sequences() for g in mismatched]
    correct_seqs = [g.sequences() for g in correct]
    in_correct = set().union(*correct_seqs) if correct_seqs else set()
    counts = Counter(s for seqs in mismatched_seqs for s in seqs)
    only = {s for s in counts if s not in in_correct}
    correct_parts = PartIndex(correct)
    reduced = {s: reduce(s, correct_parts) for s in only}
    # A mismatched model carries a reduced sequence when one of its own mismatch-only sequences
    # reduces to it (so a one-operator part counts where it makes a path new, not wherever it occurs).
    carried = Counter(r for seqs in mismatched_seqs for r in {reduced[s] for s in seqs & only})
    ops_m = sorted({op for g in mismatched for op in g.ops.values()})
    ops_c = sorted({op for g in correct for op in g.ops.values()})
    return Table12(
        mismatched_models=len(mismatched),
        correct_models=len(correct),
        ops_mismatched=ops_m,
        ops_correct=ops_c,
        ops_only_mismatched=sorted(set(ops_m) - set(ops_c)),
        shared_by_mismatched=sum(1 for n in counts.values() if n >= 2),
        shared_with_correct=sum(1 for s in counts if s in in_correct),
        only_mismatched=len(only),
        reduced_only_mismatched=sorted(set(reduced.values())),
        models_with_only_mismatched=sum(1 for seqs in mismatched_seqs if seqs & only),
        # Most carried first, ties by the sequence itself: Counter.most_common keeps ties in the
        # order sets gave them, which changes with the hash seed (a report must not).
        carried=dict(sorted(carried.items(), key=lambda item: (-item[1], item[0]))),
    )


def coverage(graphs: list[OpGraph], targets: list[Sequence_]) -> tuple[int, int]:
    """How many of ``targets`` (reduced mismatch-only sequences) occur contiguously along a path of
    ``graphs``; returns (covered, total)."""
    parts = PartIndex(graphs)
    wanted = set(targets)
    return sum(1 for t in wanted if t in parts), len(wanted)
