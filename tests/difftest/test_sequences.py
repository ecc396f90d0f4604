"""Table 12's sequence analysis on tiny graphs whose counts are worked out by hand."""

from __future__ import annotations

from itertools import pairwise

from onnx import TensorProto, helper

from issuemine.difftest.sequences import OpGraph, coverage, onnx_graph, reduce, table_12, walks


def chain(*ops: str) -> OpGraph:
    ids = [f"n{i}" for i in range(len(ops))]
    return OpGraph(dict(zip(ids, ops, strict=True)), list(pairwise(ids)))


# correct:    Conv→Relu→Add;  MatMul→Add
# mismatched: Conv→Relu→Add plus Conv→Sigmoid→Add (a branch);  MatMul→Sigmoid;  Conv→Relu→Add;
#             Transpose→Add and Conv→Add (two sources)
CORRECT = [chain("Conv", "Relu", "Add"), chain("MatMul", "Add")]
MISMATCHED = [
    OpGraph({"a": "Conv", "b": "Relu", "c": "Sigmoid", "d": "Add"}, [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]),
    chain("MatMul", "Sigmoid"),
    chain("Conv", "Relu", "Add"),
    OpGraph({"x": "Transpose", "y": "Conv", "z": "Add"}, [("x", "z"), ("y", "z")]),
]


def test_sequences_are_the_simple_paths_from_sources_to_sinks():
    assert MISMATCHED[0].sequences() == {("Conv", "Relu", "Add"), ("Conv", "Sigmoid", "Add")}
    assert MISMATCHED[3].sequences() == {("Transpose", "Add"), ("Conv", "Add")}
    assert MISMATCHED[0].sequences(limit=1) in ({("Conv", "Relu", "Add")}, {("Conv", "Sigmoid", "Add")})
    # Parts of a given length come from the graph's paths directly, without listing whole sequences.
    assert walks(MISMATCHED[0], 2) == {("Conv", "Relu"), ("Conv", "Sigmoid"), ("Relu", "Add"), ("Sigmoid", "Add")}
    assert walks(MISMATCHED[3], 3) == set()


def test_table_12_counts_computed_by_hand():
    table = table_12(MISMATCHED, CORRECT)
    assert table.mismatched_models == 4 and table.correct_models == 2
    assert table.ops_only_mismatched == ["Sigmoid", "Transpose"]
    assert table.shared_by_mismatched == 1  # Conv→Relu→Add, in two mismatched models
    assert table.shared_with_correct == 1  # the same one is in a correct model
    assert table.only_mismatched == 4  # Conv→Sigmoid→Add, MatMul→Sigmoid, Transpose→Add, Conv→Add
    # Reduced to the shortest part no correct model has: Sigmoid (twice), Transpose, and Conv→Add
    # (Conv and Add each occur in correct models, the pair does not).
    assert table.reduced_only_mismatched == [("Conv", "Add"), ("Sigmoid",), ("Transpose",)]
    assert table.models_with_only_mismatched == 3  # all but the third
    # Sigmoid makes the paths of two models new; Transpose and Conv→Add one each (the fourth model).
    assert table.carried == {("Sigmoid",): 2, ("Conv", "Add"): 1, ("Transpose",): 1}
    assert table.as_dict()["reduced_only_mismatched"] == ["Conv → Add", "Sigmoid", "Transpose"]


def test_reduce_and_coverage():
    seen = {("A",), ("B",), ("A", "B")}
    assert reduce(("A", "B", "C"), seen) == ("C",)
    assert reduce(("A", "B"), seen) == ("A", "B")  # nothing shorter is new: the whole sequence
    targets = table_12(MISMATCHED, CORRECT).reduced_only_mismatched
    suite = [chain("Sigmoid", "Relu"), chain("Conv", "Add", "Relu")]
    assert coverage(suite, targets) == (2, 3)  # Sigmoid and Conv→Add, not Transpose


def test_the_operator_graph_of_an_onnx_model():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["y"], name="sig"),
        helper.make_node("Constant", [], ["k"], name="k", value_float=2.0),
        helper.make_node("Mul", ["x", "k"], ["z0"], name="mul"),
        helper.make_node("Abs", ["z0"], ["z"], name="abs"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("y", "z")],
    )
    found = onnx_graph(helper.make_model(graph))
    # Constants are data: the same computation has the same sequences whichever exporter wrote it.
    assert found.sequences() == {("Relu", "Sigmoid"), ("Mul", "Abs")}
    assert OpGraph.from_record(found.record()).sequences() == found.sequences()
    stored_with_constant = {"ops": ["Constant", "Mul", "Abs"], "edges": [[0, 1], [1, 2]]}
    assert OpGraph.from_record(stored_with_constant).sequences() == {("Mul", "Abs")}


def chain_onnx(path, *ops: str) -> None:  # type: ignore[no-untyped-def]
    """A chain of operators as an ONNX file (structure only: the coverage metric never runs it)."""
    import onnx

    names = ["x", *[f"t{i}" for i in range(len(ops))]]
    nodes = [
        helper.make_node(op, [a], [b], name=f"n{i}")
        for i, (op, a, b) in enumerate(zip(ops, names, names[1:], strict=False))
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, [2])],
    )
    onnx.save(helper.make_model(graph), str(path))


def test_coverage_command_on_a_stored_campaign_and_a_folder_of_models(tmp_path):
    import json

    from typer.testing import CliRunner

    from issuemine.cli.app import app
    from issuemine.db import open_db
    from issuemine.difftest.campaign import Plan, open_campaign, store

    db_path = str(tmp_path / "d.db")
    db = open_db(db_path)
    campaign_id = open_campaign(db, Plan("torch.onnx", "torchscript", 17, 0, [5], 6, 1, "study"))
    for seed, (graph, outcome) in enumerate([(g, "mismatch") for g in MISMATCHED] + [(g, "success") for g in CORRECT]):
        verdict = {"study": outcome == "success"}
        store(
            db,
            campaign_id,
            {"seed": seed, "nodes": 5, "outcome": outcome, "policies": verdict, "graph": graph.record()},
        )
    db.close()
    suite = tmp_path / "suite"
    (suite / "more").mkdir(parents=True)
    chain_onnx(suite / "a.onnx", "Sigmoid", "Relu")
    chain_onnx(suite / "more" / "b.onnx", "Conv", "Add", "Relu")
    (suite / "broken.onnx").write_bytes(b"not a model")

    cli = CliRunner()
    result = cli.invoke(app, ["difftest", "coverage", str(suite), "--db", db_path, "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["models"] == 2 and len(found["unreadable"]) == 1 and "broken.onnx" in found["unreadable"][0]
    [one] = found["campaigns"]
    assert (one["sequences"], one["covered"]) == (3, 2)  # Sigmoid and Conv→Add; not Transpose
    assert one["uncovered_most_carried"] == [{"sequence": "Transpose", "models": 1}]
    md = cli.invoke(app, ["difftest", "coverage", str(suite), "--db", db_path])
    assert "66.7%" in md.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = cli.invoke(app, ["difftest", "coverage", str(empty), "--db", db_path])
    assert bad.exit_code != 0 and "no .onnx files" in bad.output
