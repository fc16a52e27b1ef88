"""Lattice thermal conductivity and its SRME: Matbench Discovery's ``phonondb-v1`` kappa task.

One protocol (:class:`KappaProtocol`) turns a structure and a model into a conductivity
record, and the same protocol turns stored DFT forces into the reference record, so that
:func:`score_kappa` compares like with like. The metric functions are in
:mod:`phonft.evaluate.srme`.

Model side (:func:`model_kappa`), as Matbench Discovery's ``calc_kappa_for_structure``:

1. relax positions and cell with FIRE + FrechetCellFilter + FixSymmetry to 1e-4 eV/Å
   (300 steps at most) and compare the spglib space group (symprec 1e-5) before and after;
2. phono3py with the task's fc3 supercell, fc2 (phonon) supercell and primitive matrix,
   0.03 Å displacements; fc2 forces of every displaced supercell in batches
   (:func:`phonft.forces.displaced_forces`), fc2 built and symmetrized;
3. frequencies on the whole q-mesh (Brillouin-zone grid): imaginary modes flag the
   material (an acoustic mode at Γ below −0.01 THz, or any other negative frequency);
4. unless flagged (imaginary modes or broken symmetry), the fc3 forces, fc3 built and
   symmetrized, and the conductivity at 300 K: relaxation-time approximation of the Wigner
   transport equation (particle + coherence, SMM19), isotope scattering, on the task's
   q-mesh.

The forces are **not** drift-corrected (``remove_force_drift=False``): Matbench Discovery
hands the calculator's forces to phono3py unchanged, and phono3py's API does not subtract
the drift; a conservative MLIP's forces sum to zero anyway.

DFT side (:func:`dft_kappa`): the same steps 2-4 from the forces stored in a
``phono3py_params.yaml``, on the structure as given (no relaxation).

A failure anywhere in one material (an exception in the model, phono3py or spglib) gives
a ``failed`` record with the error message, which scores SRME 2; it never stops a run.

Records are JSON-ready dicts (:func:`write_kappa_record`); the keys SRME needs are
``kappa_tot_avg_W_mK`` (per temperature), ``mode_kappa_tot_avg_W_mK`` (T, q, s),
``mode_weights`` and ``qpoints`` (irreducible q-points, reduced coordinates of the
primitive reciprocal cell), plus the flags ``has_imaginary_modes``, ``broken_symmetry``,
``spacegroup_initial``/``spacegroup_final`` and ``failed``/``error``; ``mode_kappa_tot_W_mK``
(T, q, s, 6) is the per-mode Voigt tensor. :mod:`~phonft.evaluate.kappa.mbd` writes them
in Matbench Discovery's column names (``kappa_mbd.json.gz`` beside a model's summary).

Modules: :mod:`~phonft.evaluate.kappa.protocol` (:class:`KappaProtocol`, :class:`KappaTask`
and the task parsers), :mod:`~phonft.evaluate.kappa.kappa103` (the kappa103 data: lookup,
SHA-256-checked download, tasks and DFT records), :mod:`~phonft.evaluate.kappa.phono3py_steps`
(the phono3py steps), :mod:`~phonft.evaluate.kappa.records` (records and their files),
:mod:`~phonft.evaluate.kappa.compute` (:func:`model_kappa`, :func:`model_kappa_many`,
:func:`dft_kappa`) and :mod:`~phonft.evaluate.kappa.scores` (:func:`score_kappa`, a model's
``summary.json`` block and the parity points). Their public names are re-exported here.
"""

from phonft.evaluate.kappa.compute import dft_kappa, model_kappa, model_kappa_many
from phonft.evaluate.kappa.kappa103 import (
    KAPPA103_ENV,
    KAPPA103_FILES,
    KAPPA103_SHA256,
    KAPPA103_URL,
    download_kappa103,
    kappa103_dir,
    kappa103_references,
    load_kappa103,
)
from phonft.evaluate.kappa.mbd import MBD_COLUMNS, mbd_row, mbd_table, write_kappa_mbd
from phonft.evaluate.kappa.protocol import (
    CONDUCTIVITY_TYPES,
    KappaProtocol,
    KappaTask,
    Matrix3,
    task_from_atoms,
    task_from_phono3py_params,
)
from phonft.evaluate.kappa.records import read_kappa_record, write_kappa_record
from phonft.evaluate.kappa.scores import (
    KAPPA103_PREFIX,
    kappa_parity_points,
    kappa_summary,
    score_kappa,
)
from phonft.evaluate.srme import imaginary_modes, spectrum_w1

__all__ = [
    "CONDUCTIVITY_TYPES",
    "KAPPA103_ENV",
    "KAPPA103_FILES",
    "KAPPA103_PREFIX",
    "KAPPA103_SHA256",
    "KAPPA103_URL",
    "MBD_COLUMNS",
    "KappaProtocol",
    "KappaTask",
    "Matrix3",
    "dft_kappa",
    "download_kappa103",
    "imaginary_modes",
    "kappa103_dir",
    "kappa103_references",
    "kappa_parity_points",
    "kappa_summary",
    "load_kappa103",
    "mbd_row",
    "mbd_table",
    "model_kappa",
    "model_kappa_many",
    "read_kappa_record",
    "score_kappa",
    "spectrum_w1",
    "task_from_atoms",
    "task_from_phono3py_params",
    "write_kappa_mbd",
    "write_kappa_record",
]
