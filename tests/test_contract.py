"""The WIT contract read by the host matches what the issue asks of the worlds."""

from __future__ import annotations

from wasihost.runtime.contract import load_contract

HARDWARE = {
    "gpio-provider",
    "i2c",
    "led-controller",
    "buzzer-controller",
    "fan-controller",
    "system-info",
}


def test_worlds_import_only_what_they_need() -> None:
    contract = load_contract()
    assert contract.package == "wasihost:plugin"
    assert contract.worlds["dashboard-plugin"].imports == frozenset()
    assert "i2c" in contract.worlds["bme680-plugin"].imports
    assert "i2c" not in contract.worlds["dht22-plugin"].imports
    assert "fan-controller" in contract.worlds["pi-monitor-plugin"].imports
    assert set(contract.interfaces) >= HARDWARE


def test_logic_exports() -> None:
    contract = load_contract()
    assert contract.logic_of("dht22-plugin") == ("sensor-logic", "poll")
    assert contract.logic_of("pi-monitor-plugin") == ("pi-monitor-logic", "poll")
    assert contract.logic_of("bme680-plugin") == ("bme680-logic", "poll")
    assert contract.logic_of("dashboard-plugin") == ("dashboard-logic", "render")


def test_types_only_interfaces_are_importable_by_every_world() -> None:
    contract = load_contract()
    allowed = contract.allowed_imports("dashboard-plugin")
    assert allowed == {"wasihost:plugin/alarm-types@0.1.0"}
