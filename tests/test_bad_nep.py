"""Malformed ``nep.txt`` files (issue 10): one clear error naming the file and the line.

The corpus ``tests/data/bad/nep/`` was written from a tiny NEP made in code (one type, Si;
29 parameters; GPUMD's ``%15.7e`` lines), not from the GPL-3 shared models, then broken
one way per file. Each must raise exactly one :class:`~phonft.errors.InputFileError` whose
single-line message names the file, the line and the fix, from ``read_nep_txt`` and from
``NEPModel.from_nep_txt`` alike; through the CLI (``nep:<path>`` in ``finetune heldout``)
each exits 2 with that one line and writes nothing.
"""

from __future__ import annotations

import pytest

from badinput import BAD, assert_clean_failure
from phonft.errors import InputFileError
from phonft.models.nep.backend import NEPModel
from phonft.models.nep.nepfile import read_nep_txt

NEP = BAD / "nep"

CASES = [
    ("too-few-parameters.txt", 32, "the header asks for 29 parameters (ann 13, c_radial 6, c_angular 6, "
                                   "q_scaler 4) but the file has 26."),
    ("too-many-parameters.txt", 36, "the header asks for 29 parameters (ann 13, c_radial 6, c_angular 6, "
                                    "q_scaler 4) but the file has 30."),
    ("unknown-version.txt", 1, "unknown NEP version 'nep5'; phonft reads nep3, nep4, nep3_zbl and nep4_zbl"),
    ("dipole-model.txt", 1, "unknown NEP version 'nep4_dipole'"),
    ("truncated-header.txt", 4, "the file ends before the 'basis_size' line."),
    ("header-out-of-order.txt", 2, "expected the 'cutoff' line, found 'n_max 1 1'."),
    ("empty.txt", 1, "the file is empty."),
    ("not-a-number.txt", 13, "'1.2345678e-0x' is not a finite number."),
    ("nan-parameter.txt", 21, "'nan' is not a finite number."),
    ("l-max-out-of-range.txt", 5, "l_max (5, 0, 0) is not (1..4, 0 or 2, 0 or 1)"),
    ("four-body-l-max.txt", 5, "l_max (4, 1, 0) is not (1..4, 0 or 2, 0 or 1)"),
    ("types-mismatch.txt", 1, "says 2 types but names 1."),
    ("unknown-element.txt", 1, "types Xx are not distinct element symbols."),
    ("duplicate-types.txt", 1, "types Si Si are not distinct element symbols."),
    ("zero-neurons.txt", 6, "0 hidden neurons; a NEP needs at least 1."),
    ("negative-cutoff.txt", 2, "cutoffs -4 3 Å are not both positive."),
]


def test_every_corpus_file_has_a_case():
    assert sorted(p.name for p in NEP.iterdir()) == sorted(name for name, _, _ in CASES)


@pytest.mark.parametrize("reader", [read_nep_txt, NEPModel.from_nep_txt], ids=["read_nep_txt", "from_nep_txt"])
@pytest.mark.parametrize("name,line,problem", CASES, ids=[c[0] for c in CASES])
def test_bad_nep_txt(name, line, problem, reader):
    path = NEP / name
    with pytest.raises(InputFileError) as caught:
        reader(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line {line}: "), message
    assert problem in message, message
    assert " Fix: " in message
    assert caught.value.path == str(path)


@pytest.mark.parametrize("name, line, words", CASES[:4] + CASES[7:8], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_nep_txt_through_the_cli(tmp_path, name, line, words):
    args = ["finetune", "heldout", "--model", f"nep:{NEP / name}", "--reference", "no-reference-needed",
            "--material", "Si", "--out", "results/finetune/run/heldout/Si/thermal.json", "--device", "cpu"]
    error = assert_clean_failure(args, cwd=tmp_path, message=f"line {line}: {words}")
    assert name in error
