"""The landmark study's command line: every subcommand parses (no data, no work)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.landmark_study import CANDIDATES, RECORD_METHODS, SWEEP_METHODS, build_parser


@pytest.mark.parametrize("argv, expected", [
    (["targets", "--seed", "1", "--out", "r", "--sequences", "3"], {"seed": 1, "out": Path("r"), "sequences": 3}),
    (["sweep", "--data-root", "r", "--out", "o", "--frames", "900", "base model"],
     {"frames": 900, "methods": ["base model"]}),
    (["record", "--data-root", "r", "--out", "o", "--sweep", "s"], {"sweep": Path("s"), "methods": []}),
    (["cost", "--data-root", "r"], {"frames": 30, "weight": 30.0}),
    (["windows", "a", "b", "c"], {"base": Path("a"), "runs": [Path("b"), Path("c")], "window": 300}),
])
def test_each_subcommand_parses(argv: list[str], expected: dict) -> None:
    ns = build_parser().parse_args(argv)
    assert ns.command == argv[0]
    assert {k: getattr(ns, k) for k in expected} == expected


def test_a_subcommand_is_required_and_the_method_lists_are_named_in_the_plans() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    methods = (Path(__file__).resolve().parents[1] / "pipelines" / "plans" / "methods.yaml").read_text()
    assert all(f"\n{m}:" in methods for m in SWEEP_METHODS + RECORD_METHODS + CANDIDATES if m != "base model")
