"""Policy presets: default.toml is the code's defaults; the others differ as they say."""

from __future__ import annotations

import doctest
from datetime import datetime, timedelta, timezone
from importlib import resources

import pytest
from pydantic import BaseModel

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from memagent import presets
from memagent.config import Config, ForgettingSettings
from memagent.errors import ConfigError
from memagent.policies.forgetting import ARCHIVE, ItemState, decide
from memagent.presets import available_presets, load_preset

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_doctests():
    assert doctest.testmod(presets).failed == 0


def test_available_presets_lists_the_shipped_three():
    assert {"default", "small_device", "never_archive"} <= set(available_presets())


def test_default_toml_equals_config_field_by_field():
    loaded, code = load_preset("default"), Config()
    assert loaded == code
    sections = [name for name, field in Config.model_fields.items() if isinstance(field.default, BaseModel)]
    assert {"retrieval", "storage", "consolidation", "answer", "schedule", "forgetting", "feedback"} <= set(sections)
    raw = tomllib.loads((resources.files("memagent.policies") / "default.toml").read_text(encoding="utf-8"))
    for section in sections:
        model = getattr(code, section)
        assert set(raw[section]) == set(type(model).model_fields), f"[{section}] must list every field"
        for name in type(model).model_fields:
            assert getattr(getattr(loaded, section), name) == getattr(model, name), f"{section}.{name}"


def test_every_setting_is_described():
    for field in Config.model_fields.values():
        if isinstance(field.default, BaseModel):
            for name, inner in type(field.default).model_fields.items():
                assert inner.description, name


def _items() -> list[ItemState]:
    return [ItemState(f"e{n}", "episode", T0 + timedelta(days=10 * n), importance=n / 40) for n in range(40)]


def _archived(config: Config, now: datetime) -> int:
    return sum(d.action == ARCHIVE for d in decide(_items(), now, config.forgetting))


def test_small_device_forgets_more_than_default_and_never_archive_nothing():
    now = T0 + timedelta(days=420)
    default, small, never = (_archived(load_preset(n), now) for n in ("default", "small_device", "never_archive"))
    assert 0 < default < small
    assert never == 0
    assert _archived(load_preset("never_archive"), now + timedelta(days=10_000)) == 0


def test_path_and_overrides(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('max_batch = 50\n[forgetting]\nbase_days = 5.0\n', encoding="utf-8")
    config = load_preset(path, forgetting=ForgettingSettings(min_age_days=1.0), retrieval={"candidates": 7})
    assert (config.max_batch, config.forgetting.min_age_days) == (50, 1.0)
    assert config.forgetting.base_days == ForgettingSettings().base_days  # an object replaces the section
    assert load_preset(path, forgetting={"min_age_days": 1.0}).forgetting.base_days == 5.0  # a dict merges
    assert config.retrieval.candidates == 7 and config.retrieval.lexical_weight == Config().retrieval.lexical_weight
    assert load_preset(str(path)).max_batch == 50


@pytest.mark.parametrize("text, key", [
    ("[forgetting]\nbase_dayz = 3.0\n", "forgetting.base_dayz"),
    ("[forgetting]\narchive_below = 1.5\n", "forgetting.archive_below"),
    ("[retrieval]\ncandidates = \"many\"\n", "retrieval.candidates"),
    ("[no_such_section]\nx = 1\n", "no_such_section"),
])
def test_bad_file_names_the_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_preset(path)
    assert str(path) in str(raised.value) and key in str(raised.value)


def test_unreadable_unknown_or_malformed_presets_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="available: default"):
        load_preset("no_such_preset")
    with pytest.raises(ConfigError, match="missing.toml"):
        load_preset(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[forgetting\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_preset(broken)
    with pytest.raises(ValueError):  # ConfigError is a ValueError too
        load_preset("default", feedback={"min_weight": 5.0, "max_weight": 1.0})
