"""The broker's heap settings take where the C library has them."""

from __future__ import annotations

import platform

from kcli.broker.memory import keep_freed_memory


def test_glibc_accepts_the_heap_settings() -> None:
    # mallopt answers 0 for a parameter or value it refuses: a wrong constant fails here
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
