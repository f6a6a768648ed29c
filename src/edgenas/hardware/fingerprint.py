"""Device fingerprints: what identifies the machine and software a latency was measured on."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from typing import Any

import torch

from edgenas._env import cpu_model

#: Fingerprint fields that define the device identity (a new value = a new device in the store).
IDENTITY_FIELDS = ("cpu", "cpu_count", "gpu", "gpu_driver", "machine", "torch", "onnxruntime")


def fingerprint(device_type: str = "cpu") -> dict[str, Any]:
    """CPU model and count, GPU name and driver (for CUDA), OS, and the runtime library versions."""
    import os

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "torch": torch.__version__,
        "gpu": None,
        "gpu_driver": None,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    if device_type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        try:
            import pynvml

            pynvml.nvmlInit()
            info["gpu_driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception:  # pynvml optional
            info["gpu_driver"] = f"cuda {torch.version.cuda}"
    return info


def device_key(info: dict[str, Any]) -> str:
    """A short hash of the identity fields of a fingerprint."""
    payload = json.dumps({k: info.get(k) for k in IDENTITY_FIELDS}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


def default_device_name(info: dict[str, Any]) -> str:
    """A readable, stable device name: ``local-<gpu or cpu model>-<key>``."""
    model = info.get("gpu") or info.get("cpu") or "device"
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(R\)|\(TM\)|CPU|Processor|@.*", "", model, flags=re.I).lower())
    return f"local-{slug.strip('-')[:32]}-{device_key(info)}"
