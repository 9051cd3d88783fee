"""The trainer keeps freed memory in the heap: a second large allocation faults no pages in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys
from audioemb.train.heap import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults_of_a_fresh_array():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = bytearray(64 * 2**20)  # 64 MiB, above glibc's largest mmap threshold; written (zeroed)
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_fresh_array()
print(kept, faults_of_a_fresh_array())
"""


def _probe(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    kept, faults = out.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    kept, faults = _probe("keep")
    default_kept, default_faults = _probe("default")
    assert kept and not default_kept
    pages = 64 * 2**20 // 4096
    assert default_faults > pages // 2  # glibc maps a fresh block each time and faults it in
    assert faults < pages // 20  # the heap keeps the first block and hands it out again


def test_runs_record_whether_the_heap_was_kept():
    pytest.importorskip("torch")
    from audioemb.train.config import RUNTIME_FIELDS, TrainConfig
    from audioemb.train.runinfo import env_info

    assert "keep_heap" in RUNTIME_FIELDS and TrainConfig("x", "byol").keep_heap
    assert env_info("cpu", 1, TrainConfig("x", "byol"), heap_kept=True)["heap_kept"] is True
