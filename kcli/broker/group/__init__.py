"""The group coordinator: classic consumer groups and committed offsets in
``__consumer_offsets``."""

from kcli.broker.group.coordinator import OFFSETS_TOPIC, GroupCoordinator

__all__ = ["OFFSETS_TOPIC", "GroupCoordinator"]
