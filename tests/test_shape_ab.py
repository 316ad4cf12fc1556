"""scripts/shape_ab.py: alternating A/B runs of padded / truncated / strided shapes and layers."""
from __future__ import annotations

import argparse
import importlib.util
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
SCRIPT = os.path.join(ROOT, "scripts", "shape_ab.py")
_spec = importlib.util.spec_from_file_location("shape_ab", SCRIPT)
shape_ab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shape_ab)

TINY = ["--rounds", "1", "--ks", "4,6", "--total", "4096", "--reps", "1"]


def test_parse_ks():
    assert shape_ab.parse_ks("6, 8,10") == [6, 8, 10]
    for bad in ("", "x", "0", "27"):
        with pytest.raises(argparse.ArgumentTypeError, match="--ks"):
            shape_ab.parse_ks(bad)


def test_one_round_on_this_checkout_gives_every_case_for_every_variant(capsys):
    assert shape_ab.main(TINY + ["--layers", "--layer-rows", "0.001", ROOT, f"{ROOT},X=1"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].count("`") == 4 and table[1] == "|---|---|---|"
    names = [re.match(r"\| (.*?) \(", row).group(1) for row in table[2:]]
    # n = 16 has no room for the 24-element padding or truncation; 2^6 has every case
    assert names == (["2^4 square", "2^4 out=wide"]
                     + [f"2^6 {c}" for c in ("square", "dout-16", "dout-24", "din-24", "both-24", "din/4", "out=wide")]
                     + [f"layer {max(1, int(b * 0.001))}x{i}->{o}" for b, i, o in shape_ab.LAYERS])
    for row in table[2:]:
        values = [float(v) for v in row.strip("|").split("|")[1:]]
        assert len(values) == 2 and all(v > 0 for v in values), row


def test_settings_reach_the_worker():
    # an unknown backend makes zerofwht.fwht raise inside the worker, which only happens when the
    # variant's setting is in the worker's environment
    with pytest.raises(RuntimeError, match="worker failed.*ZEROFWHT_BACKEND"):
        shape_ab.main(TINY + [f"{ROOT},ZEROFWHT_BACKEND=no-such-backend"])


@pytest.mark.parametrize("argv, words", [([], "at least one VARIANT"), (["--rounds", "0", "."], "--rounds"),
                                         ([".,A"], "is not NAME=VALUE")])
def test_bad_arguments_exit_with_a_message(capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        shape_ab.main(argv)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err
