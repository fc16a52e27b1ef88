"""``phonft --version`` and ``phonft doctor``: what this installation is made of.

:func:`versions` reads the installed distributions' metadata only (nothing is imported, so
``phonft --version`` is quick). :func:`report` adds what needs imports: the torch devices
and threads, the download cache folder and its size, and whether each optional model
backend imports, with the reason when it does not. Both are plain dicts, printed as text
or, with ``--json``, as JSON.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import platform
import sys
import warnings
from importlib import metadata
from typing import Any

KEY_PACKAGES = ("numpy", "scipy", "phonopy", "phono3py", "spglib", "seekpath", "ase", "pymatgen", "h5py",
                "pandas", "matplotlib", "tqdm", "torch", "chgnet", "mace-torch", "calorine", "snakemake")
"""Distributions whose versions ``phonft --version`` and ``phonft doctor`` list."""

BACKENDS = {
    "chgnet": ("chgnet.model", "the 'ml' extra: pip install 'phonft[ml]'"),
    "mace": ("mace.modules", "the 'ml' extra: pip install 'phonft[ml]'"),
    "nep": ("phonft.models.nep.backend", "install torch (see the README)"),
    "calorine (GPUMD's NEP, test oracle)": ("calorine.calculators", "pip install calorine (the 'test' extra)"),
    "sevenn (ase: calculator)": ("sevenn.calculator", "pip install sevenn"),
    "orb (ase: calculator)": ("orb_models.forcefield.pretrained", "pip install orb-models"),
    "mattersim (ase: calculator)": ("mattersim.forcefield", "pip install mattersim"),
    "fairchem (ase: calculator)": ("fairchem.core", "pip install fairchem-core"),
}
"""Optional backend -> (module that must import, how to install it). phonft's own NEP needs
torch only; calorine is GPUMD's Python interface and the NEP tests' oracle."""


def versions() -> dict[str, str | None]:
    """phonft, Python and :data:`KEY_PACKAGES` versions (None: not installed)."""
    from phonft import __version__

    out: dict[str, str | None] = {"phonft": __version__, "python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def version_text() -> str:
    """``phonft --version``: phonft's version line, then Python's and each key package's."""
    found = versions()
    lines = [f"phonft {found.pop('phonft')}"]
    lines += [f"  {name:<11} {value or 'not installed'}" for name, value in found.items()]
    return "\n".join(lines)


def devices() -> dict[str, Any]:
    """torch's view of the machine: CUDA (and its device names), MPS, threads, CPU count."""
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
        return {**out, "torch": f"does not import: {_reason(exc)}"}
    cuda = bool(torch.cuda.is_available())
    out.update(torch_threads=torch.get_num_threads(), cuda_available=cuda,
               cuda_version=torch.version.cuda,
               cuda_devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
               mps_available=bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))
    return out


def cache() -> dict[str, Any]:
    """The download cache folder, whether it exists and its size in bytes (with each kind's)."""
    from phonft.cache import default_cache_dir, folder_size_bytes

    folder = default_cache_dir()
    kinds = {p.name: folder_size_bytes(p) for p in sorted(folder.iterdir()) if p.is_dir()} if folder.is_dir() else {}
    return {"folder": str(folder), "exists": folder.is_dir(), "size_bytes": folder_size_bytes(folder),
            "kinds_bytes": kinds}


def backends() -> dict[str, dict[str, Any]]:
    """Whether each of :data:`BACKENDS` imports, and the reason and the fix when not."""
    out: dict[str, dict[str, Any]] = {}
    for name, (module, install) in BACKENDS.items():
        try:  # quietly: some packages print banners or warn on import, which would spoil --json
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                importlib.import_module(module)
            out[name] = {"module": module, "imports": True}
        except Exception as exc:  # noqa: BLE001 - a broken install is what doctor reports
            out[name] = {"module": module, "imports": False, "reason": _reason(exc), "fix": install}
    return out


def _reason(exc: BaseException) -> str:
    """The exception as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


def report() -> dict[str, Any]:
    """Everything ``phonft doctor`` prints."""
    return {"versions": versions(), "platform": platform.platform(), "executable": sys.executable,
            "devices": devices(), "cache": cache(), "backends": backends()}


def report_text(found: dict[str, Any]) -> str:
    """:func:`report` as indented text."""
    lines = ["versions:"]
    lines += [f"  {name:<11} {value or 'not installed'}" for name, value in found["versions"].items()]
    lines += [f"platform: {found['platform']}", f"python executable: {found['executable']}", "devices:"]
    lines += [f"  {key}: {value}" for key, value in found["devices"].items()]
    c = found["cache"]
    lines += [f"cache: {c['folder']} ({_size(c['size_bytes'])}" + ("" if c["exists"] else ", not created yet") + ")"]
    lines += [f"  {kind}: {_size(size)}" for kind, size in c["kinds_bytes"].items()]
    lines.append("backends:")
    for name, b in found["backends"].items():
        lines.append(f"  {name}: " + ("ok" if b["imports"] else f"does not import ({b['reason']}); {b['fix']}"))
    return "\n".join(lines)


def _size(n_bytes: int) -> str:
    """A byte count in B, KiB, MiB or GiB."""
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
