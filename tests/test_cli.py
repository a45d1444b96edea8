"""The gdlens command."""

from __future__ import annotations

import re

import pytest

from gdlens.cli import build_parser, main


def test_demo_prints_estimates_next_to_the_truth(capsys):
    assert main(["demo", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "trace: exact" in out
    for method in ("hutchinson", "hutch++", "xtrace"):
        assert method in out
    # the top eigenvalues printed agree with the truth to the printed precision
    pairs = re.findall(r"λ_\d: ([\d.]+)\s+truth ([\d.]+)", out)
    assert len(pairs) == 5
    assert all(abs(float(a) - float(b)) < 1e-9 for a, b in pairs)


def test_every_command_has_help_with_an_example(capsys):
    parser = build_parser()
    for command in ("demo",):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "example:" in capsys.readouterr().out
