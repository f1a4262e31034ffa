"""The machine a run trains on: its accelerator, whether it computes bf16 or float16 natively, what it is.

`resolve_precision` picks the precision policy a run trains in; `environment` describes the machine and the package
versions for run_info.json.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import keras

from .config import PRECISIONS


def cpu_has_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def accelerator() -> str:
    """'gpu' when the active Keras backend sees a GPU, else 'cpu'."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "gpu" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def gpu_compute_capability() -> tuple[int, int] | None:
    """The first GPU's CUDA compute capability as the active Keras backend reports it, e.g. (8, 0) for an A100.

    Returns:
        (major, minor), or None where there is no GPU or the backend does not say (an AMD or Apple GPU, an old
        library).
    """
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return _capability(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
                               if gpus else None)
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            return _capability(getattr(gpus[0], "compute_capability", None) if gpus else None)
        if backend == "torch":
            import torch

            return _capability(torch.cuda.get_device_capability() if torch.cuda.is_available() else None)
    except Exception:  # noqa: BLE001 - a library that cannot tell is a GPU of unknown capability
        return None
    return None


def _capability(value) -> tuple[int, int] | None:
    """(major, minor) from (8, 0) or "8.0" (JAX), else None (e.g. an AMD "gfx90a")."""
    try:
        major, minor = (value.split(".") if isinstance(value, str) else value)[:2]
        return int(major), int(minor)
    except (TypeError, ValueError, AttributeError):
        return None


def resolve_precision(precision: str = "auto") -> str:
    """The precision policy to train in: `precision`, or for "auto" the fastest one the hardware computes natively.

    "auto": mixed_bfloat16 on a GPU of compute capability 8.0 or more (Ampere and later) or a CPU with native bf16
    (`cpu_has_bf16`); mixed_float16 on a GPU with fast float16 but no bf16 (Volta and Turing, 7.x: V100, T4; and
    the P100, 6.0), where Keras' `compile` adds loss scaling (`keras.optimizers.LossScaleOptimizer`); float32
    elsewhere, a GPU whose capability is unknown included (float16 on most Pascal cards, 6.1, is 64 times slower).

    Args:
        precision: "auto" or one of `config.PRECISIONS`.

    Returns:
        A Keras dtype policy name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if accelerator() == "gpu":
        capability = gpu_compute_capability()
        if capability is None:
            return "float32"
        if capability >= (8, 0):
            return "mixed_bfloat16"
        return "mixed_float16" if capability >= (7, 0) or capability == (6, 0) else "float32"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def computes_natively(model: keras.Model) -> bool:
    """Whether every layer of `model` computes in float32 or in the policy "auto" picks on this machine
    (`resolve_precision`): False for a mixed_bfloat16 model on a T4, or on a CPU without native bf16."""
    here = resolve_precision("auto")
    return all(layer.dtype_policy.name in ("float32", here) for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer))


def environment() -> dict:
    """Package versions, Python, CPU and core count, for run_info.json."""
    versions = {}
    for pkg in ("keras", "tensorflow", "jax", "torch", "numpy", "scikit-learn", "fer_utils"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(versions=versions, python=platform.python_version(), platform=platform.platform(), cpu=cpu,
                cpu_count=os.cpu_count(), cpu_bf16=cpu_has_bf16())
