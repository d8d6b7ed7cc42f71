"""How the broker process's C heap gives memory back: as rarely as is reasonable.

A produce request arrives as a buffer of up to a megabyte or more, is copied once or
twice on its way to the segment file, and is freed. By default glibc serves such
buffers from fresh mmap() pages above a threshold that adapts, and trims the top of the
heap back to the kernel as soon as 128 KiB or more of it is free. Either way the next
request's buffers land in pages the kernel must fault in and zero again. On a VM
that is the costliest part of a copy: a profile of 10 KB produce put a fifth of the
broker's time in first touches of such pages, and keeping them (below) raised produce
throughput by about a fifth (issue 18).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("kcli.broker")

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 64 * 1024 * 1024
"""Free heap kept for reuse before any is returned: about 64 produce requests' worth."""

MMAP_THRESHOLD = 32 * 1024 * 1024
"""Allocations this large or larger still get pages of their own (glibc's maximum)."""


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it at once.

    False where the C library has no mallopt (macOS, some libcs): nothing changes there."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not applied:
        log.debug("mallopt refused the heap settings; the C library's defaults stay")
    return applied
