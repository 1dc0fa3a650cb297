"""Hostile input (issue 19): options, hand-edited results files, price and mix files.
Every bad input is one line on stderr naming the argument or file and field, exit code
2, never a traceback; odd but valid input prints finite figures or says why not. The
CLI runs in this process (hwbench.cli.main, the console script's own path)."""

import json

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"
TINY = ROOT / "tests" / "data" / "tiny.toml"


def main(capsys, *args):
    """(exit code, stdout, stderr) of the console script run in this process."""
    from hwbench.cli import main as console

    try:
        console([str(a) for a in args])
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(res, *needles) -> None:
    rc, _, err = res
    assert rc == 2, (rc, err[-2000:])
    assert "Traceback" not in err and err.count("\n") == 1, err[-2000:]
    for n in needles:
        assert n in err, err


# ------------------------------------------------------------------ 1. options
BAD_NUMBERS = [
    ("--threshold", "nan", "'nan' is not a finite number"),
    ("--threshold", "inf", "'inf' is not a finite number"),
    ("--threshold", "-1", "is not in the range 0<=x<=1000"),
    ("--alpha", "nan", "'nan' is not a finite number"),
    ("--alpha", "-inf", "is not a finite number"),
    ("--alpha", "0", "is not in the range"),
    ("--alpha", "1", "is not in the range"),
]


@pytest.mark.parametrize("cmd,option,value,needle", [
    (cmd, *bad) for cmd in ("compare", "history", "ab") for bad in BAD_NUMBERS
    if not (cmd == "history" and bad[0] == "--alpha")])  # history has no --alpha
def test_threshold_and_alpha_are_finite_and_in_range(capsys, cmd, option, value, needle):
    args = {"compare": [EXAMPLE, EXAMPLE], "history": [EXAMPLE], "ab": [TINY]}[cmd]
    one_line(main(capsys, cmd, *args, option, value), f"Invalid value for '{option}'", needle)


def test_ab_out_is_checked_like_the_other_commands(capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line(main(capsys, "ab", TINY, "--out", afile / "sub"), f"--out {afile}/sub: {afile} is a file, not a folder")
    one_line(main(capsys, "ab", TINY, "--out", "/proc/hwbench-x"), "--out /proc/hwbench-x: cannot write: ")
