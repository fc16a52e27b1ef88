"""Fine-tuning settings: frozen dataclasses with a digest (see :mod:`phonft.protocols`).

:class:`TrainSettings` holds everything that changes the trained weights. The device is
deliberately not part of it: a run checkpointed on a GPU may resume on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from phonft.ase_calculators import check_trainable
from phonft.errors import ConfigError
from phonft.finetune.gnep.settings import GNEPSettings
from phonft.finetune.replay_settings import REPLAY_STRUCTURES, ReplaySettings  # noqa: F401  (re-exported)
from phonft.protocols import Protocol

COLUMN_MODES = ("hvp", "fd")
#: How a phonon step draws its Hessian columns (:mod:`phonft.finetune.symmetry`).
COLUMN_SAMPLINGS = ("uniform", "symmetry")
OBJECTIVES = ("pft", "rattled", "both")
HESSIAN_NORMS = ("plain", "near_field", "distance")
#: The fine-tuning strategies (:mod:`phonft.finetune.strategies`).
#: Learning-rate schedules (:mod:`phonft.finetune.runlength`).
LR_SCHEDULES = ("constant", "cosine", "plateau")
STRATEGIES = ("full", "freeze", "lora", "multihead", "scratch")
#: Named LoRA target sets; a list of module-name prefixes is the alternative.
LORA_TARGETS = ("all", "radial_only")


@dataclass(frozen=True)
class LossWeights(Protocol):
    """Weights of the loss terms; ``huber_delta`` is the Huber delta of the force, stress
    and Hessian terms, ``energy_huber_delta`` that of the energy term (None: plain MAE).

    Energies enter per atom (eV/atom), forces per component (eV/Å), stresses per
    component (eV/Å³) and Hessian entries per component (eV/Å²).
    """

    name: ClassVar[str] = "loss_weights"
    energy: float = 0.0
    forces: float = 20.0
    stress: float = 5.0
    hessian: float = 100.0
    huber_delta: float | None = None
    energy_huber_delta: float | None = None


@dataclass(frozen=True)
class LoRASettings(Protocol):
    """Low-rank adapters of the ``lora`` strategy (:mod:`phonft.finetune.strategies.lora`).

    Each targeted layer ``W`` gains ``(alpha / rank) · B A`` with ``B`` initialised to zero,
    so training starts at the base model. ``targets``: ``all`` (the interaction blocks:
    CHGNet's atom/bond/angle convolution layers, MACE's interactions and products),
    ``radial_only`` (MACE's radial MLPs, ``interactions.*.conv_tp_weights``), or a list of
    module-name prefixes. ``rank`` may not exceed a targeted layer's smaller dimension.
    """

    name: ClassVar[str] = "lora"
    rank: int = 4
    alpha: float = 4.0
    targets: str | tuple[str, ...] = "all"

    def __post_init__(self) -> None:
        if self.rank < 1 or not self.alpha > 0:
            raise ConfigError(f"finetune.runs.<run>.lora: rank must be a positive integer and alpha positive, not "
                              f"rank {self.rank}, alpha {self.alpha:g}. Fix: e.g. lora: {{rank: 4, alpha: 4}}.")
        if isinstance(self.targets, str) and self.targets not in LORA_TARGETS:
            raise ConfigError(f"finetune.runs.<run>.lora.targets must be one of {LORA_TARGETS} or a list of module-name "
                              f"prefixes, not {self.targets!r}.")
        if isinstance(self.targets, tuple) and not self.targets:
            raise ConfigError("finetune.runs.<run>.lora.targets is an empty list. Fix: name module-name prefixes, "
                              "or use all / radial_only.")


REPLAY_WEIGHTS = LossWeights(energy=20000.0, forces=200.0, stress=50.0, hessian=0.0, huber_delta=0.1,
                             energy_huber_delta=0.1)

RATTLED_WEIGHTS = LossWeights(energy=1.0, forces=100.0, stress=1.0, hessian=0.0, huber_delta=None)
"""Weights of the rattled E/F/S loss (George et al.'s objective on the augment frames).

The ratios are mace-torch's ``mace_run_train`` defaults (``energy_weight`` 1,
``forces_weight`` 100, ``stress_weight`` 1), which MACE fine-tuning uses unless told
otherwise: forces dominate, energies (eV/atom) and stresses (eV/Å³) steer gently. The terms
are MAEs (``huber_delta`` None), as in the phonon step, so that under ``objective: both``
the rattled forces (weight 100, eV/Å) and the Hessian columns (weight 100, eV/Å²) pull
with comparable strength. Frames without an energy or stress label (harmonic labels have
forces only) simply leave those terms out (:mod:`phonft.finetune.rattled`).
"""


@dataclass(frozen=True)
class DriftBudget(Protocol):
    """How far a kept model may move on the held-back replay frames.

    Model selection keeps the epoch with the lowest phonon validation loss **among the
    epochs within this budget**; the base model (epoch 0) always is. What is bounded
    depends on the replay labels:

    - pseudo-labels (the base model's own predictions): the mean absolute drift from the
      base model, ``energy_eV_atom`` (eV/atom) and ``force_eV_A`` (eV/Å);
    - DFT labels (upstream data): the error against the labels, at most ``error_ratio``
      times the base model's (energy and forces); moving toward DFT is not forgetting.

    None switches a bound off; without held-back frames there is no bound.
    """

    name: ClassVar[str] = "drift_budget"
    energy_eV_atom: float | None = 0.002
    force_eV_A: float | None = 0.01
    error_ratio: float | None = 1.05

    def allows(self, row: dict[str, float], base: dict[str, float], dft_labels: bool = False) -> bool:
        """Whether an epoch's metrics ``row`` is within, given the base model's row (epoch 0)."""
        if dft_labels:
            bounds = [(None if self.error_ratio is None or f"replay_{q}_mae" not in base
                       else self.error_ratio * base[f"replay_{q}_mae"], f"replay_{q}_mae") for q in ("energy", "force")]
        else:
            bounds = [(self.energy_eV_atom, "drift_energy_mae"), (self.force_eV_A, "drift_force_mae")]
        return all(bound is None or key not in row or row[key] <= bound for bound, key in bounds)


DEFAULT_COLUMN = "hvp"
"""The column mode of ``column: auto``, the same for every backend measured.

Smooth models (MACE): the exact ``hvp`` column equals the finite difference, and is the
paper's choice. CHGNet: its exact Hessian differs from phonopy's 0.01 Å finite
differences (3 Å three-body cutoff, stiff higher derivatives), so both modes were trained
on the default split and scored on the held-out materials with phonopy's own force
constants (``scripts/pft_ablation.py``): ``hvp`` gave the lower Hessian MAE and omega_max
error (see the README), at the same step cost, so it is the default too.
"""


@dataclass(frozen=True)
class TrainSettings(Protocol):
    """How a model is fine-tuned with the PFT phonon loss and replay co-training.

    Attributes
    ----------
    base_model, model_options
        Model spec string (see :mod:`phonft.models`) and options for code-built models.
    strategy
        ``full`` (every parameter trains), ``freeze`` (all but ``frozen`` and the first
        ``freeze_blocks`` blocks), ``lora`` (low-rank adapters only, :class:`LoRASettings`),
        ``multihead`` (a new readout for the phonon data; replay trains the original one),
        ``scratch`` (the same architecture from random weights). See
        :mod:`phonft.finetune.strategies`.
    frozen, freeze_blocks
        Parameter-name prefixes, and the number of leading interaction blocks (with the
        embeddings), kept fixed by the ``freeze`` strategy.
    lora
        Rank, alpha and targets of the ``lora`` strategy.
    column
        ``hvp``: exact Hessian column by one Hessian-vector product. ``fd``: central
        difference of forces at ``fd_distance_A``, differentiable in the parameters.
        ``auto``: the measured default, :data:`DEFAULT_COLUMN` (``hvp``).
    columns_per_structure
        Hessian columns drawn per phonon structure and step, uniformly over its 3N DOFs
        (``column_sampling: uniform``); under ``symmetry``, irreducible atoms drawn, each
        with its 3 Cartesian columns (so 3 columns per unit).
    column_sampling
        ``uniform`` (default): columns uniform over the 3N DOFs. ``symmetry``: irreducible
        atoms of the supercell (spglib), uniformly, all 3 columns of each in one batched
        HVP (or its 6 displaced copies for ``fd``), the residual averaged over the point
        group's rotations and weighted by the orbit's multiplicity: an unbiased estimate
        of the full-Hessian loss (:mod:`phonft.finetune.symmetry`).
    graph_cache, fd_graph_reuse
        Keep each phonon structure's prepared graph across steps (bitwise the fresh one);
        in ``fd``, let the ±h copies keep their structure's neighbour list when no pair of
        the displaced atom crosses a cutoff (equal to rounding, not bitwise: opt-in).
        :mod:`phonft.finetune.graphs`.
    hessian_norm, near_field_radius_A
        ``plain``: MAE over all 3N entries of a column. ``near_field``: only atoms within
        ``near_field_radius_A`` of the displaced atom. ``distance``: every atom, weighted
        by ``exp(-d / near_field_radius_A)``. The logged Hessian MAE uses the same weights.
    objective
        What a step fits (:mod:`phonft.finetune.rattled`): ``pft`` (default), the phonon
        loss on the reference supercells' DFT Hessian columns; ``rattled``, the E/F/S loss
        on the training materials' rattled frames (``results/augment/<m>/rattled.extxyz``,
        George et al.), no Hessian term; ``both``, each phonon step's loss plus a rattled
        batch's loss, one optimiser step. Replay steps follow every step in all three;
        model selection is by the phonon validation loss in all three.
    phonon_weights, replay_weights, rattled_weights
        Loss weights of the phonon step, of the replay steps and of the rattled term
        (:data:`RATTLED_WEIGHTS`). The phonon step has no energy term (the references carry
        no total energy): ``phonon_weights.energy`` must be 0.
    max_drift
        Forgetting budget of model selection (:class:`DriftBudget`).
    replay_steps
        Replay steps taken after every phonon step (0 disables co-training).
    lr, weight_decay, grad_clip, ema_decay
        AdamW learning rate and weight decay, gradient-norm clip, EMA decay.
    epochs, batch_atoms, replay_batch_atoms, rattled_batch_atoms
        Epochs (over the phonon training set; under ``rattled``, over the rattled frames);
        node budgets (atoms per batch) of phonon, replay and rattled batches.
    dtype
        Training precision (``float32`` or ``float64``); phonons are evaluated in float64.
    seed
        Seeds batching, column sampling and replay order.
    lr_schedule, warmup_steps, lr_final, plateau_factor, plateau_patience
        The learning-rate schedule (:mod:`phonft.finetune.runlength`): ``constant``
        (default), ``cosine`` (from ``lr`` to ``lr_final`` over the run's phonon steps) or
        ``plateau`` (``lr`` times ``plateau_factor`` after ``plateau_patience`` epochs
        without a lower validation loss), after a linear warm-up over ``warmup_steps``
        phonon steps; a phonon step's replay steps use its lr.
    val_columns
        Fixed Hessian columns per validation structure (distinct, drawn once from the
        seed); the validation loss is their mean.
    val_from_train
        When the run has no validation material: hold back ``val_columns`` fixed columns
        of every training structure as the validation set (the training steps never draw
        them), so model selection, ``plateau`` and early stopping have a loss. False: no
        validation loss (the last epoch within the forgetting budget is kept).
    early_stopping_patience
        Stop after this many epochs without a new kept model (null: run every epoch).
    gnep, gnep_data
        GNEP training of a NEP before the run's objective (:mod:`phonft.finetune.gnep_run`):
        its settings (:class:`~phonft.finetune.gnep.GNEPSettings`) and its data sources
        (``augment``, ``replay``, extxyz paths, https URLs). Empty ``gnep_data``: no GNEP
        phase. ``base_model: nep`` (from scratch) needs it; with it, ``epochs`` may be 0
        (GNEP only).
    """

    name: ClassVar[str] = "train"
    base_model: str = "chgnet"
    model_options: tuple[tuple[str, Any], ...] = ()
    strategy: str = "full"
    frozen: tuple[str, ...] = ()
    freeze_blocks: int = 0
    lora: LoRASettings = field(default_factory=LoRASettings)
    column: str = "auto"
    columns_per_structure: int = 1
    column_sampling: str = "uniform"
    fd_distance_A: float = 0.01
    graph_cache: bool = True
    fd_graph_reuse: bool = False
    hessian_norm: str = "plain"
    near_field_radius_A: float = 4.0
    phonon_weights: LossWeights = field(default_factory=LossWeights)
    replay_weights: LossWeights = REPLAY_WEIGHTS
    objective: str = "pft"
    rattled_weights: LossWeights = RATTLED_WEIGHTS
    max_drift: DriftBudget = field(default_factory=DriftBudget)
    replay_steps: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-3
    grad_clip: float = 100.0
    ema_decay: float = 0.999
    epochs: int = 10
    batch_atoms: int = 128
    replay_batch_atoms: int = 64
    rattled_batch_atoms: int = 128
    dtype: str = "float32"
    seed: int = 0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    lr_final: float = 1e-6
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    val_columns: int = 1
    val_from_train: bool = True
    early_stopping_patience: int | None = None
    gnep: GNEPSettings = field(default_factory=GNEPSettings)
    gnep_data: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.column == "auto":
            object.__setattr__(self, "column", DEFAULT_COLUMN)
        if self.column not in COLUMN_MODES:
            raise ConfigError(f"column must be one of {COLUMN_MODES}, not {self.column!r}")
        if self.column_sampling not in COLUMN_SAMPLINGS:
            raise ConfigError(f"finetune.runs.<run>.column_sampling must be one of {', '.join(COLUMN_SAMPLINGS)}, "
                              f"not {self.column_sampling!r}. Fix: column_sampling: uniform (or symmetry).")
        if self.hessian_norm not in HESSIAN_NORMS:
            raise ConfigError(f"hessian_norm must be one of {HESSIAN_NORMS}, not {self.hessian_norm!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"finetune.runs.<run>.objective must be one of {OBJECTIVES}, not {self.objective!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, not {self.dtype!r}")
        if self.columns_per_structure < 1 or self.batch_atoms < 1 or self.rattled_batch_atoms < 1:
            raise ConfigError("columns_per_structure, batch_atoms and rattled_batch_atoms must be positive")
        if self.epochs < (0 if self.gnep_data else 1):
            raise ConfigError(f"finetune.runs.<run>.epochs must be at least 1 (0 only with gnep_data: GNEP alone), "
                              f"not {self.epochs}.")
        check_trainable(self.base_model, "finetune.runs.<run>.base_model")
        if self.base_model == "nep" and not self.gnep_data:
            raise ConfigError("finetune.runs.<run>: base_model 'nep' is a NEP from scratch (random weights), but "
                              "gnep_data is empty, so nothing would train it before PFT. Fix: set gnep_data (e.g. "
                              "[augment] or [replay] or an extxyz path), or start from a trained NEP "
                              "(base_model: 'nep:<nep.txt>').")
        self._check_strategy()
        self._check_run_length()
        if self.phonon_weights.energy > 0:
            # A PhononSample has no energy (references hold force constants): the term could not act.
            raise ConfigError(f"finetune.runs.<run>.phonon_weights.energy is {self.phonon_weights.energy:g}, but "
                              "phonon samples carry no energy label (the references hold force constants, not "
                              "total energies). Fix: set it to 0; energies are fitted through replay_weights.energy.")

        if self.rattled_weights.hessian > 0:
            # Rattled frames carry forces, energies and stresses, never force constants.
            raise ConfigError(f"finetune.runs.<run>.rattled_weights.hessian is {self.rattled_weights.hessian:g}, but "
                              "rattled frames carry no Hessian labels. Fix: set it to 0; the Hessian term is "
                              "phonon_weights.hessian, used by objective: pft or both.")

    def _check_run_length(self) -> None:
        """The schedule's own settings, and no setting of another schedule (it would be ignored)."""
        where = "finetune.runs.<run>"
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"{where}.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}.")
        if self.warmup_steps < 0:
            raise ConfigError(f"{where}.warmup_steps must be 0 or more, not {self.warmup_steps}.")
        if self.lr_schedule == "cosine" and not 0 <= self.lr_final <= self.lr:
            raise ConfigError(f"{where}.lr_final must be in [0, lr = {self.lr:g}], not {self.lr_final:g}. Fix: "
                              "e.g. lr_final: 1.0e-6.")
        if not 0 < self.plateau_factor < 1 or self.plateau_patience < 0:
            raise ConfigError(f"{where}: plateau_factor must be in (0, 1) and plateau_patience 0 or more, not "
                              f"{self.plateau_factor:g} and {self.plateau_patience}. Fix: e.g. 0.5 and 2.")
        ignored = [k for k, on in (("lr_final", "cosine"), ("plateau_factor", "plateau"), ("plateau_patience", "plateau"))
                   if self.lr_schedule != on and getattr(self, k) != getattr(TrainSettings, k)]
        if ignored:
            raise ConfigError(f"{where}: {', '.join(ignored)} set but lr_schedule is {self.lr_schedule!r}, which "
                              "would ignore it. Fix: set lr_schedule (cosine: lr_final; plateau: plateau_*), or "
                              "remove it.")
        if self.val_columns < 1:
            raise ConfigError(f"{where}.val_columns must be at least 1, not {self.val_columns}.")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(f"{where}.early_stopping_patience must be null or at least 1, not "
                              f"{self.early_stopping_patience}.")

    def _check_strategy(self) -> None:
        """The strategy's own settings, and no setting of another strategy (it would be ignored)."""
        where = "finetune.runs.<run>"
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"{where}.strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}.")
        if self.freeze_blocks < 0:
            raise ConfigError(f"{where}.freeze_blocks must be 0 or more, not {self.freeze_blocks}.")
        if self.strategy != "freeze" and (self.frozen or self.freeze_blocks):
            raise ConfigError(f"{where}: frozen / freeze_blocks are set but strategy is {self.strategy!r}, which "
                              "would ignore them. Fix: set strategy: freeze, or remove them.")
        if self.strategy == "freeze" and not (self.frozen or self.freeze_blocks):
            raise ConfigError(f"{where}: strategy 'freeze' needs 'frozen' (parameter-name prefixes, e.g. "
                              "atom_embedding, atom_conv_layers.0) or 'freeze_blocks' (a number of leading blocks).")
        if self.strategy != "lora" and self.lora != LoRASettings():
            raise ConfigError(f"{where}: lora settings are given but strategy is {self.strategy!r}, which would "
                              "ignore them. Fix: set strategy: lora, or remove lora.")
        if self.strategy == "multihead" and self.replay_steps == 0:
            raise ConfigError(f"{where}: strategy 'multihead' trains the original head on the replay set, but "
                              "replay_steps is 0. Fix: set replay_steps >= 1, or use another strategy.")
        bounds = (self.max_drift.energy_eV_atom, self.max_drift.force_eV_A, self.max_drift.error_ratio)
        if self.strategy == "scratch" and any(b is not None for b in bounds):
            raise ConfigError(f"{where}: strategy 'scratch' starts from random weights, so no epoch can be within "
                              "a forgetting budget measured from the base model. Fix: set max_drift: "
                              "{energy_eV_atom: null, force_eV_A: null, error_ratio: null}.")

    @property
    def options(self) -> dict[str, Any]:
        """``model_options`` as a mapping (checked against the model by :func:`phonft.models.load_model`)."""
        pairs = self.model_options  # a mapping arrives as sorted (key, value) pairs
        if not (isinstance(pairs, tuple)
                and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs)):
            raise ConfigError(f"model_options must be a mapping of option names to values, not "
                              f"{pairs!r:.80}. Fix: e.g. model_options: {{elements: [Si]}}.")
        return dict(pairs)
