"""Notebook parameters: SEGLIB_<NAME> environment variables override a notebook's defaults, so CI
runs the notebooks small (SEGLIB_PROFILE=smoke) and a GPU user runs them full size without editing one."""

from __future__ import annotations

import os
from pathlib import Path

from seglib.config import PROFILES
from seglib.workflow.demo_data import default_data
from seglib.workflow.environment import mount_drive, project_root


def notebook_settings(**defaults) -> dict:
    """Parameters of a notebook: SEGLIB_<NAME> environment variables override `defaults`; on Colab
    SEGLIB_DRIVE mounts Google Drive first, so data, runs and reports go there."""
    mount_drive()
    settings = {"profile": "demo", "data": "", "runs": "", "reports": "", **defaults}
    for name, default in list(settings.items()):
        raw = os.environ.get(f"SEGLIB_{name.upper()}")
        if raw is not None:
            try:
                settings[name] = _parse_like(raw, default)
            except ValueError:
                raise ValueError(f"SEGLIB_{name.upper()}={raw!r}: not a {type(default).__name__}") from None
    if settings["profile"] not in PROFILES:
        raise ValueError(f"SEGLIB_PROFILE={settings['profile']!r}: choose one of {', '.join(PROFILES)}")
    root, profile = project_root(), settings["profile"]
    settings["data"] = Path(settings["data"]) if settings["data"] else default_data(profile)
    # Runs and reports are kept apart per profile and dataset, so a lung run never replaces a pelvis one.
    dataset = "pelvis_phantom" if settings["data"].resolve() == default_data(profile).resolve() else settings["data"].name
    settings["runs"] = Path(settings["runs"] or root / "runs" / profile / dataset)
    settings["reports"] = Path(settings["reports"] or root / "reports" / profile / dataset)
    return settings


def _parse_like(raw: str, default):
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return type(default)(raw) if default is not None else raw


def wants_training(setting: str, profile: str) -> bool:
    """A notebook's train_contemporary: yes / no, or auto = yes in the smoke (seconds) and full
    (GPU) profiles and no in demo, whose CPU budget covers the U-Nets alone (the times: reports/benchmarks.md)."""
    choice = str(setting).strip().lower()
    if choice not in ("auto", "yes", "no", "true", "false", "1", "0"):
        raise ValueError(f"train_contemporary={setting!r}: choose auto, yes or no")
    return profile != "demo" if choice == "auto" else choice in ("yes", "true", "1")
