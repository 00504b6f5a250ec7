"""The ID lookup's settings from MDM_* (mdm/settings.py)."""

from __future__ import annotations

import pytest

from mdm.settings import MIB, Settings


def test_lookup_settings_from_env() -> None:
    default = Settings.from_env({}).lookup
    # A budget in bytes, no cap on answers: the budget alone bounds the cache.
    assert (default.cache_bytes, default.cache_entries, default.warm) == (768 * MIB, None, True)
    lookup = Settings.from_env(
        {
            "MDM_LOOKUP_CACHE_MB": "1.5",
            "MDM_LOOKUP_CACHE_ENTRIES": "1200000",
            "MDM_LOOKUP_WARM": "false",
        }
    ).lookup
    assert (lookup.cache_bytes, lookup.cache_entries, lookup.warm) == (
        1536 * 1024,
        1_200_000,
        False,
    )
    assert Settings.from_env({"MDM_LOOKUP_CACHE_MB": "0"}).lookup.cache_bytes == 0
    for word, on in (("0", False), ("off", False), ("No", False), ("1", True), ("ON", True)):
        assert Settings.from_env({"MDM_LOOKUP_WARM": word}).lookup.warm is on


def test_a_cache_size_that_is_no_size_is_refused_by_name() -> None:
    for bad in ("lots", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="MDM_LOOKUP_CACHE_MB is not a size in MiB"):
            Settings.from_env({"MDM_LOOKUP_CACHE_MB": bad})


def test_a_misspelt_on_off_value_is_refused_not_read_as_off() -> None:
    with pytest.raises(ValueError, match="MDM_LOOKUP_WARM is not an on/off value"):
        Settings.from_env({"MDM_LOOKUP_WARM": "ture"})


def test_the_cli_names_a_malformed_setting_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mdm.cli import main

    monkeypatch.setenv("MDM_LOOKUP_WARM", "ture")
    assert main(["serve"]) == 2
    assert "mdm: MDM_LOOKUP_WARM is not an on/off value" in capsys.readouterr().err
