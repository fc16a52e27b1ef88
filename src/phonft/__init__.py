"""phonft: crystal structures to phonon-accurate machine-learned interatomic potentials.

The package backs the stages of the Snakemake workflow, one module (or package) per
stage, each with a ``phonft <stage>`` command (:mod:`phonft.cli`), in data-flow order:

``structures`` -> ``displacements`` -> ``references`` -> ``finetune`` -> ``evaluate`` -> ``figures``

A stage imports only earlier stages and the shared leaf layers, which import no stage:
``errors``, ``io``, ``protocols``, ``models``, ``phonons``, ``atoms`` (ASE <-> phonopy
structures), ``cache`` (the download cache and the one download helper), ``doctor``
(``phonft --version``, ``phonft doctor``), ``specs`` (reference specs), ``phonopy_files``
(phonopy/phono3py yaml loading in VASP units), ``plan`` (the workflow's planner and results
layout, standard library only) and ``cliutils``.

For notebooks, ``from phonft import load_model, load_reference, model_phonons, score_mdr``
(:mod:`phonft.api`, imported on first use) runs the evaluate stage's MDR protocol on a
references folder or an in-memory ``phonopy.Phonopy``.

Units follow phonopy's VASP convention throughout: lengths in Å, energies in eV,
forces in eV/Å, force constants in eV/Å², frequencies in THz, temperatures in K.
"""

from phonft.errors import ConfigError, InputFileError, NetworkError, PhonftError

__version__ = "0.1.0"

__all__ = ["__version__", "PhonftError", "InputFileError", "ConfigError", "NetworkError",
           "load_model", "load_reference", "model_phonons", "score_mdr"]

_API = ("load_model", "load_reference", "model_phonons", "score_mdr")


def __getattr__(name: str):
    # The notebook API (phonft.api) imports phonopy, and torch when a model loads; load it on
    # first use, so that `import phonft` (and the workflow's planner) stays light.
    if name in _API:
        from phonft import api

        return getattr(api, name)
    raise AttributeError(f"module 'phonft' has no attribute {name!r}")
