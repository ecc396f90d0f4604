"""Automatic judgements against the study's human labels, on the development set.

    python benchmarks/bench_devset.py

The development set (tests/devset/threads/) is fixture threads written in the image of the study's
labeled torch.onnx and tf2onnx issues; their expected labels are the study's own (data/
study-labels.csv), joined by the imitated issue's address. Printed: how many threads paste a
readable traceback, how often the stage read from it agrees with the raters' stage, the confusion
table (human stage × stage read) and, per deciding rule, how often the raters agreed when it fired;
the same on the held-out threads (tests/devset/heldout/: the study's labeled issues without a title,
which the rules were not calibrated on).
"""

from __future__ import annotations

from collections import Counter

from issuemine.testing.devset import HELDOUT_DIR, DevThread, load_devset, read_stages, stage_agreement


def main() -> None:
    report("development set (the stage rules were calibrated on it)", load_devset())
    report("held-out threads (never used to calibrate)", load_devset(HELDOUT_DIR))


def report(title: str, threads: list[DevThread]) -> None:
    print(f"== {title}: {len(threads)} threads ({dict(Counter(t.converter for t in threads))})")
    print(f"human stages: {dict(Counter(t.labels['stage'] for t in threads).most_common())}")
    for converter in (None, "torch.onnx", "tf2onnx"):
        chosen = [t for t in threads if converter in (None, t.converter)]
        result = stage_agreement(read_stages(chosen))
        print(
            f"\n{converter or 'both converters'}: readable traceback in {result['read']} of {result['threads']}; "
            f"stage agrees with the raters in {result['agree']} ({result['share']:.0%})"
        )
        if converter is None:
            print("  human stage -> stage read: count")
            for (human, got), count in result["confusion"].items():  # type: ignore[attr-defined]
                print(f"    {human:20} -> {got:20} {count}")
            print("  rule that decided: raters agreed / fired")
            for rule, (agreed, fired) in result["rules"].items():  # type: ignore[attr-defined]
                print(f"    {agreed:3}/{fired:<3} {rule}")
    print()


if __name__ == "__main__":
    main()
