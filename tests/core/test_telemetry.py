"""Tracing is off unless the standard OTEL_* variables ask for it."""

from __future__ import annotations

import pytest

from bifrost_core.errors import ConfigError
from bifrost_core.telemetry import tracing_enabled

OTEL = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)


@pytest.mark.parametrize(
    ("variables", "enabled"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_when_asked(monkeypatch, variables, enabled):
    for name in OTEL:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert tracing_enabled() is enabled


def test_an_exporter_bifrost_does_not_have_is_one_line(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,zipkin")
    with pytest.raises(ConfigError) as failure:
        tracing_enabled()
    assert (
        str(failure.value)
        == "OTEL_TRACES_EXPORTER: 'zipkin' is not an exporter Bifrost has (otlp, console, none)"
    )
