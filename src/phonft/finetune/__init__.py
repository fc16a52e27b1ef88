"""Phonon fine-tuning (PFT): Hessian-column phonon loss with replay co-training.

Modules: :mod:`settings` (TrainSettings, ReplaySettings), :mod:`split` (writes the seeded
split that :mod:`phonft.plan.runs` plans), :mod:`data` (phonon and replay samples),
:mod:`losses` (pure loss terms), :mod:`columns` (column sampling, HVP and
finite-difference columns), :mod:`objective` (the phonon and replay objectives, on one
screen), :mod:`strategies` (which parameters train), :mod:`trainer` (loop, EMA,
checkpoints), :mod:`checkpoint` (checkpoint keys and safe loading), :mod:`replay` (replay
sets), :mod:`heldout` (model phonons on reference materials) and :mod:`run` (what
``phonft finetune replay``, ``train`` and ``heldout`` do).
"""
