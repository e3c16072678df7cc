from __future__ import annotations

import pytest

from passerelle.settings import SettingsError, parse_settings


def test_ping_is_off_by_default_and_takes_an_address() -> None:
    assert parse_settings("{}").ping is None
    settings = parse_settings("ping: {address: ':8082'}\n")
    assert settings.ping is not None and settings.ping.address == ":8082"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ping: {address: 'nope'}\n", "address 'nope' must be host:port or :port"),
        ("ping: {}\n", "ping.address"),
        ("ping: {address: ':8082', path: /healthz}\n", "ping.path: unknown key"),
    ],
)
def test_bad_ping_settings_are_errors(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(text)
    assert message in str(error.value)
