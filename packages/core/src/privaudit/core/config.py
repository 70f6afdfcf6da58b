"""Flat run configs from YAML: one mapping of field names onto a frozen dataclass."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import yaml
from privaudit.core.errors import InputError

Config = TypeVar("Config")


def load_yaml_config(cls: type[Config], path: str | Path) -> Config:
    """`cls` built from the YAML mapping in `path`; an unreadable file, unknown fields or values of
    the wrong type are an InputError naming the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"config file {path} is not readable YAML ({type(exc).__name__}).") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(f"config file {path} must hold a mapping of field names to values.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"config file {path} has unknown field {unknown[0]!r}.")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise InputError(f"config file {path} has a value of the wrong type ({exc}).") from exc
