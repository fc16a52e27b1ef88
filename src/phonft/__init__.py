"""phonft: crystal structures to phonon-accurate machine-learned interatomic potentials.

The package backs the stages of the Snakemake workflow, one module (or package) per
stage, each with a ``phonft <stage>`` command:

``structures`` -> ``displacements`` -> ``references`` -> (``augment``, ``finetune``, ``evaluate``)

Units follow phonopy's VASP convention throughout: lengths in Å, energies in eV,
forces in eV/Å, force constants in eV/Å², frequencies in THz, temperatures in K.
"""

from phonft.errors import ConfigError, InputFileError, NetworkError, PhonftError

__version__ = "0.1.0"

__all__ = ["__version__", "PhonftError", "InputFileError", "ConfigError", "NetworkError"]
