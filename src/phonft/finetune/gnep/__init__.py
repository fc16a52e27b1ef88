"""NEP training: GNEP (Adam/AdamW on exact gradients) and the SNES baseline.

Modules: :mod:`settings` (GNEPSettings, GNEPWeights, SNESSettings), :mod:`frames`
(labelled frames from GPUMD's train.xyz or phonft's extxyz), :mod:`data` (prepared
minibatches and the E/F/V loss), :mod:`init` (q_scaler, max_neighbors, energy shift),
:mod:`train` (GNEP), :mod:`snes` (SNES) and :mod:`history` (history rows, checkpoints).
"""

from phonft.finetune.gnep.frames import LabelledFrame, from_rattled, read_training_frames
from phonft.finetune.gnep.history import GNEPHistory
from phonft.finetune.gnep.init import initialise
from phonft.finetune.gnep.settings import GNEPSettings, GNEPWeights, SNESSettings
from phonft.finetune.gnep.snes import train_snes
from phonft.finetune.gnep.train import train_gnep

__all__ = ["GNEPHistory", "GNEPSettings", "GNEPWeights", "LabelledFrame", "SNESSettings", "from_rattled",
           "initialise", "read_training_frames", "train_gnep", "train_snes"]
