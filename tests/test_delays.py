"""The delay cascade's arithmetic (pure functions, no broker)."""

from __future__ import annotations

import pytest

from taskcore import ConfigurationError, delays


def test_routing_key_spells_the_delay_in_binary_then_the_queue() -> None:
    key = delays.routing_key(5, "email")
    words = key.split(".")
    assert len(words) == delays.LEVELS + 1
    assert words[-1] == "email"
    assert words[-4:-1] == ["1", "0", "1"]
    assert set(words[:-4]) == {"0"}


def test_queue_names_with_dots_keep_their_dots() -> None:
    assert delays.routing_key(1, "reports.export").endswith(".1.reports.export")
    assert delays.delivery_binding("reports.export") == "*." * delays.LEVELS + "reports.export"


def test_entry_level_is_the_highest_set_bit() -> None:
    assert delays.entry_level(1) == 0
    assert delays.entry_level(5) == 2
    assert delays.entry_level(2**20 + 3) == 20
    with pytest.raises(ValueError):
        delays.entry_level(0)


def test_units_round_to_the_nearest_100ms() -> None:
    assert delays.delay_units(0) == 0
    assert delays.delay_units(0.04) == 0
    assert delays.delay_units(0.06) == 1
    assert delays.delay_units(2.5) == 25
    with pytest.raises(ConfigurationError, match="beyond the maximum"):
        delays.delay_units(delays.MAX_DELAY + 1)


def test_level_bindings_select_one_word() -> None:
    assert delays.level_binding(delays.LEVELS - 1, "1") == "1.#"
    assert delays.level_binding(0, "0") == "*." * (delays.LEVELS - 1) + "0.#"
