"""Policy presets: TOML files whose tables mirror ``Config``'s sections.

A bare name (``"default"``, ``"small_device"``, ``"never_archive"``) loads the
preset shipped in ``memagent.policies``; anything that looks like a path
(a ``Path``, a name with a slash or ending in ``.toml``) loads that file. A
preset only needs the settings it changes: the rest keep the code's defaults.
``policies/default.toml`` lists every setting with its default value.

>>> load_preset("small_device").forgetting.base_days < load_preset("default").forgetting.base_days
True
>>> load_preset("default", forgetting={"archive_below": 0.0}).forgetting.archive_below
0.0
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from memagent.config import Config
from memagent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

PACKAGE = "memagent.policies"
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def available_presets() -> list[str]:
    """Names of the presets shipped with memagent, sorted."""
    return sorted(entry.name[:-5] for entry in resources.files(PACKAGE).iterdir()
                  if entry.name.endswith(".toml") and entry.is_file())


def load_preset(name_or_path: str | Path, **overrides: Any) -> Config:
    """A ``Config`` from a preset name or a TOML file, with keyword ``overrides`` on top.

    A mapping overrides some fields of a section
    (``load_preset("default", retrieval={"candidates": 30})``); a settings
    object (``forgetting=ForgettingSettings(...)``) replaces the whole section.
    Unknown keys and bad values raise ``ConfigError`` naming the file and key.
    """
    source, text = _read(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return build_config(_merge(data, overrides), source)


def build_config(data: Mapping[str, Any], source: str = "<preset>") -> Config:
    """Validate a preset's tables into a ``Config``; errors name ``source`` and the key."""
    try:
        return Config.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                             for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _read(name_or_path: str | Path) -> tuple[str, str]:
    text_name = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text_name or "\\" in text_name or text_name.endswith(".toml"):
        path = Path(name_or_path)
        try:
            return str(path), path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read preset: {exc}") from None
    if not _NAME.match(text_name) or text_name not in available_presets():
        raise ConfigError(f"unknown preset {text_name!r}; available: {', '.join(available_presets())} "
                          "(or give the path of a TOML file)")
    resource = resources.files(PACKAGE) / f"{text_name}.toml"
    return f"{PACKAGE}/{text_name}.toml", resource.read_text(encoding="utf-8")


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, table by table; a settings object replaces its table."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, BaseModel):
            merged[key] = value.model_dump()
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
