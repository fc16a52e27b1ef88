"""The notebook API (``from phonft import load_model, load_reference, model_phonons,
score_mdr``): light to import, the evaluate stage's numbers, in-memory Phonopy input, and
the README's example run as written."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from phonft_testdata import REPO, HarmonicModel


def _example(text: str) -> str:
    """The python code block that starts ``import phonopy`` in ``text``, dedented."""
    import textwrap

    blocks = re.findall(r"(?:```python|\.\. code-block:: python)\n\n?(.*?)(?:```|\n\"\"\"|\Z)", text, re.S)
    found = [textwrap.dedent(b).strip() for b in blocks if "from phonft import" in b and "import phonopy" in b]
    assert found, "no API example found"
    return found[0]


def test_importing_the_api_names_loads_no_torch_and_no_phonopy() -> None:
    code = ("import sys; from phonft import load_model, load_reference, model_phonons, score_mdr; "
            "print(sorted(m for m in ('torch', 'phonopy', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_score_mdr_is_the_row_phonft_evaluate_writes(references, tmp_path, monkeypatch) -> None:
    """The same model on the same references folder: the API's row equals the one
    ``evaluate_material`` + ``mdr_table`` (what ``phonft evaluate`` runs) make from files."""
    import phonft.models
    from phonft import load_reference, model_phonons, score_mdr
    from phonft.evaluate.metrics import mdr_table
    from phonft.evaluate.run import evaluate_material

    ref_dir = references("MgO")
    monkeypatch.setattr(phonft.models, "load_model", lambda spec, **kw: HarmonicModel(ref_dir))
    evaluate_material("harmonic-dft", ref_dir, "MgO", tmp_path / "eval" / "MgO")
    written = mdr_table(["MgO"], tmp_path / "eval", ref_dir.parent).iloc[0].to_dict()
    result = model_phonons(HarmonicModel(ref_dir), load_reference(ref_dir))
    assert result.material == "MgO" and result.phonon.force_constants.shape == (64, 64, 3, 3)
    row = score_mdr(result, ref_dir)
    assert row == written
    assert row["omega_max_K_abs_err"] < 1e-6 and row["band_mae_THz"] < 1e-6  # the DFT model itself


def test_model_phonons_takes_an_in_memory_phonopy(references) -> None:
    """A Phonopy with force constants, or with only displacements and forces, gives the
    folder's fc2 back for the harmonic DFT model; the input object is not modified."""
    from phonft import load_reference, model_phonons, score_mdr

    folder = load_reference(references("MgO"))
    model = HarmonicModel(folder.path)
    from_folder = model_phonons(model, folder)
    with_fc = folder.phonopy()
    result = model_phonons(model, with_fc, protocol={"band_npoints": 11})
    assert result.material == "MgO" and result.protocol.band_npoints == 11
    np.testing.assert_allclose(result.phonon.force_constants, from_folder.phonon.force_constants, atol=1e-10)
    np.testing.assert_array_equal(with_fc.force_constants, folder.fc2_eV_A2)  # untouched
    forces_only = folder.phonopy(with_fc=False)
    assert forces_only.force_constants is None
    row = score_mdr(model, forces_only, material="MgO-forces")
    assert row["material"] == "MgO-forces" and forces_only.force_constants is None
    assert row["omega_max_K_abs_err"] < 1e-6 and row["stable_dft"] == row["stable_model"]


def test_a_phonopy_without_forces_or_force_constants_is_a_one_line_error() -> None:
    import phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    from phonft import model_phonons
    from phonft.errors import ConfigError

    cell = PhonopyAtoms(symbols=["Si"] * 2, cell=np.eye(3) * 5.43, scaled_positions=[[0, 0, 0], [0.25, 0.25, 0.25]])
    ph = phonopy.Phonopy(cell, supercell_matrix=np.eye(3, dtype=int))
    with pytest.raises(ConfigError, match="neither force constants nor the forces.*force_sets_filename") as info:
        model_phonons(HarmonicModel.__new__(HarmonicModel), ph)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_the_documented_example_runs_on_the_vendored_data(tmp_path) -> None:
    """The example of phonft.api's docstring (the README's), run as written with CHGNet on the
    vendored NaCl data; what it saves opens with phonopy and holds the model's fc2."""
    pytest.importorskip("chgnet")
    import phonopy

    import phonft.api

    code = _example(phonft.api.__doc__)
    (tmp_path / "data").symlink_to(REPO / "data")  # the example's paths start at the repository root
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    omega, dft, mae = re.search(r"omega_max (\d+) K \(DFT (\d+) K\), band MAE ([\d.]+) THz", proc.stdout).groups()
    assert int(dft) == 300  # the vendored NaCl's DFT omega_max without NAC, K
    assert 100 < int(omega) < 400 and 0 < float(mae) < 5  # CHGNet 0.3.0 (measured: 226 K, 1.550 THz)
    saved = phonopy.load(tmp_path / "NaCl-chgnet_params.yaml")
    assert saved.force_constants is not None and saved.force_constants.shape[1] == len(saved.supercell)


def test_the_readme_shows_the_tested_example() -> None:
    """README's API example is the one tested above (skipped until the README has the section)."""
    import phonft.api

    readme = (REPO / "README.md").read_text()
    if "from phonft import load_model, model_phonons, score_mdr" not in readme:
        pytest.skip("README.md has no API example yet")
    assert _example(readme) == _example(phonft.api.__doc__)
