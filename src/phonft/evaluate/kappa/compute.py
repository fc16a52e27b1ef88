"""The conductivity records of a model (:func:`model_kappa`, :func:`model_kappa_many`) and
of stored DFT forces (:func:`dft_kappa`), under one :class:`KappaProtocol`."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phonft.errors import InputFileError
from phonft.evaluate.kappa.phono3py_steps import (
    flags_and_conductivity,
    init_phono3py,
    model_forces,
    produce_fc2,
    produce_fc3,
)
from phonft.evaluate.kappa.protocol import KappaProtocol, KappaTask, int_matrix
from phonft.evaluate.kappa.records import base_record, finish_record, mark_failed, read_kappa_record, write_kappa_record
from phonft.io import sha256_file

log = logging.getLogger(__name__)


def model_kappa(model, task: KappaTask, protocol: KappaProtocol | None = None, *, batch_atoms: int | None = None,
                progress: bool = True, on_phono3py=None) -> dict[str, Any]:
    """The conductivity record of ``model`` on ``task`` (never raises for the material).

    ``model`` is a :class:`phonft.models.Model` (evaluate it in float64). Returns the record
    described in :mod:`phonft.evaluate.kappa`, with ``kind: "model"``, ``model`` (its spec),
    ``relaxation`` (steps, convergence, residual force, space groups, relaxed cell in Å),
    ``n_supercells`` and ``timings_s``. Any error gives ``status: "failed"`` with the
    message in ``error``. ``on_phono3py(ph3)`` is called once the conductivity is done.
    """
    from phonft.evaluate.relax import relax, spacegroup_number

    protocol = protocol or KappaProtocol()
    t0 = time.perf_counter()
    record = base_record(task, "model", protocol, model=getattr(model, "spec", str(model)))
    timings = record["timings_s"]
    stage = "setup"
    try:
        model.check_elements(task.atoms, task.id)
        stage = "relaxation"
        t = time.perf_counter()
        if protocol.relax_max_steps > 0:
            rr = relax(task.atoms, model.as_ase_calculator(), fmax_eV_A=protocol.relax_fmax_eV_A,
                       max_steps=protocol.relax_max_steps, relax_cell=protocol.relax_cell,
                       symprec=protocol.symprec, where=task.id)
            atoms = rr.atoms
            record["relaxation"] = rr.as_dict()
            sg0, sg1 = rr.spacegroup_before, rr.spacegroup_after
        else:
            atoms = task.atoms.copy()
            sg0 = sg1 = spacegroup_number(atoms, protocol.symprec)
        timings["relaxation"] = time.perf_counter() - t
        record.update(spacegroup_initial=sg0, spacegroup_final=sg1, broken_symmetry=bool(sg0 != sg1))

        stage = "fc2"
        ph3 = init_phono3py(atoms, task, protocol)
        fc2_cells = ph3.phonon_supercells_with_displacements
        fc3_cells = ph3.supercells_with_displacements
        record["n_supercells"] = {"fc2": len(fc2_cells), "fc3": len(fc3_cells),
                                  "fc2_atoms": len(ph3.phonon_supercell), "fc3_atoms": len(ph3.supercell)}
        t = time.perf_counter()
        ph3.phonon_forces = model_forces(model, fc2_cells, len(ph3.phonon_supercell), protocol,
                                         f"{task.id} fc2", batch_atoms, progress)
        timings["fc2_forces"] = time.perf_counter() - t
        produce_fc2(ph3, protocol)

        def fc3_step(p) -> None:
            t3 = time.perf_counter()
            p.forces = model_forces(model, fc3_cells, len(p.supercell), protocol, f"{task.id} fc3",
                                    batch_atoms, progress)
            timings["fc3_forces"] = time.perf_counter() - t3
            produce_fc3(p, protocol)

        stage = "fc3 and conductivity"
        flags_and_conductivity(ph3, record, protocol, fc3_step)
        if on_phono3py is not None:
            on_phono3py(ph3)
    except Exception as exc:  # one material must never stop a benchmark run
        mark_failed(record, exc, stage)
    return finish_record(record, t0)


def model_kappa_many(model, tasks: Sequence[KappaTask], protocol: KappaProtocol | None = None, *,
                     out_dir: str | os.PathLike | None = None, batch_atoms: int | None = None,
                     progress: bool = True) -> dict[str, dict[str, Any]]:
    """:func:`model_kappa` over many tasks, with a progress bar; records keyed by id.

    With ``out_dir`` each record is written to ``out_dir/<id>.json.gz`` as soon as it is
    done, and a record already there with the same model spec and protocol digest (and not
    failed) is reused, so that a killed run continues where it stopped.
    """
    from tqdm.auto import tqdm

    protocol = protocol or KappaProtocol()
    spec = getattr(model, "spec", str(model))
    records: dict[str, dict[str, Any]] = {}
    bar = tqdm(tasks, desc=f"kappa {spec}", unit="material", disable=not progress, mininterval=5.0)
    for task in bar:
        bar.set_postfix_str(task.id)
        path = Path(out_dir) / f"{task.id}.json.gz" if out_dir is not None else None
        if path is not None and path.is_file():
            old = read_kappa_record(path)
            if old.get("model") == spec and old.get("protocol_digest") == protocol.digest() and not old.get("failed"):
                records[task.id] = old
                continue
        records[task.id] = rec = model_kappa(model, task, protocol, batch_atoms=batch_atoms, progress=False)
        if path is not None:
            write_kappa_record(path, rec)
        log.info("%s: %s, kappa %s W/m/K, %.0f s", task.id, rec["status"], rec["kappa_tot_avg_W_mK"],
                 rec["timings_s"]["total"])
    return records


def dft_kappa(phono3py_params_path: str | os.PathLike, task: KappaTask,
              protocol: KappaProtocol | None = None, on_phono3py=None) -> dict[str, Any]:
    """The conductivity record of the DFT forces stored in ``phono3py_params_path``.

    The structure is used as given (no relaxation); the supercells, primitive matrix and
    displacements are those of the file (``task`` must agree on the supercells) and the
    mesh is ``task.q_mesh``. The relaxation settings of ``protocol`` are unused; everything
    else is applied as on the model side, so that the record compares with
    :func:`model_kappa` records. A file that cannot be read raises
    :class:`~phonft.errors.InputFileError`; a failure after that gives a ``failed`` record.
    ``on_phono3py`` as in :func:`model_kappa`.
    """
    from phonft.evaluate.relax import spacegroup_number
    from phonft.atoms import to_ase
    from phonft.phonopy_files import load_phono3py_yaml

    protocol = protocol or KappaProtocol()
    path = Path(phono3py_params_path)
    t0 = time.perf_counter()
    ph3 = load_phono3py_yaml(path)
    fc3 = int_matrix(ph3.supercell_matrix, str(path), "supercell_matrix")
    if fc3 != task.fc3_supercell:
        raise InputFileError(path, f"has the fc3 supercell {fc3}, the task '{task.id}' {task.fc3_supercell}.",
                             "build the task from this file with task_from_phono3py_params.")
    if not ph3.dataset:
        raise InputFileError(path, "holds no fc3 displacement dataset with forces.",
                             "use the phono3py_params.yaml written by `phonft references`.")
    ph3.mesh_numbers = list(task.q_mesh)
    record = base_record(task, "dft", protocol, source={"file": str(path), "sha256": sha256_file(path)})
    stage = "force constants"
    try:
        sg = spacegroup_number(to_ase(ph3.unitcell), protocol.symprec)
        record.update(spacegroup_initial=sg, spacegroup_final=sg, broken_symmetry=False)
        t = time.perf_counter()
        if ph3.phonon_supercell_matrix is not None and ph3.phonon_dataset:
            produce_fc2(ph3, protocol)
            fc3_done = False
        else:  # fc2 comes from the fc3 set's first displacements
            produce_fc3(ph3, protocol)
            fc3_done = True
        record["timings_s"]["fc2"] = time.perf_counter() - t
        stage = "conductivity"
        flags_and_conductivity(ph3, record, protocol,
                               (lambda p: None) if fc3_done else (lambda p: produce_fc3(p, protocol)))
        if on_phono3py is not None:
            on_phono3py(ph3)
    except Exception as exc:
        mark_failed(record, exc, stage)
    return finish_record(record, t0)
