"""augment stage: rattled supercells of each material, labelled, for energy/force/stress training.

``results/augment/<material>/`` receives:

- ``rattled.extxyz``: ``n_frames`` seeded rattled copies of the material's reference
  supercell (:mod:`~phonft.augment.rattle`), labelled under mace's ``REF_*`` keys
  (:mod:`~phonft.augment.frames` states the contract, :mod:`~phonft.augment.labels` the
  label sources);
- ``inputs/vasp/``, ``inputs/qe/``: the frames as VASP POSCARs and pw.x structure blocks,
  written by phonopy (:mod:`~phonft.augment.inputs`), to label elsewhere;
- ``manifest.json``: the :class:`~phonft.augment.settings.AugmentSettings` record (digest,
  package versions), the label settings and source, counts and file digests.

Later stages read the frames with :func:`phonft.augment.frames.read_frames`.
"""
