"""Config validation and source resolution, as DescribeConfigs reports them."""

from __future__ import annotations

import pytest

from kcli.broker.configs import (
    TOPIC_CONFIGS,
    ConfigSource,
    InvalidConfig,
    Settings,
    validate_topic_configs,
)


def test_topic_value_comes_from_override_then_broker_then_default() -> None:
    settings = Settings({"log.retention.ms": "1000"})
    assert settings.resolve_topic({"retention.ms": "5"}, "retention.ms").source == (
        ConfigSource.DYNAMIC_TOPIC_CONFIG
    )
    broker_level = settings.resolve_topic({}, "retention.ms")
    assert (broker_level.value, broker_level.source) == ("1000", ConfigSource.STATIC_BROKER_CONFIG)
    default = settings.resolve_topic({}, "segment.bytes")
    assert (default.value, default.source) == ("1073741824", ConfigSource.DEFAULT_CONFIG)


@pytest.mark.parametrize(
    ("name", "value"),
    [("retention.ms", "soon"), ("cleanup.policy", "forever"), ("min.insync.replicas", "0"),
     ("message.timestamp.type", "Now"), ("no.such.config", "1"), ("segment.bytes", "99999999999")],
)
def test_invalid_topic_configs_are_refused(name: str, value: str) -> None:
    with pytest.raises(InvalidConfig):
        validate_topic_configs({name: value})


def test_every_topic_config_default_validates() -> None:
    for definition in TOPIC_CONFIGS.values():
        assert definition.validate(definition.default) == definition.default
