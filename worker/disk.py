"""Free space in the runs dir, checked before every claim.

A worker whose disk is full would otherwise claim job after job and fail each one
in its first second (a "black hole" host, in Slurm's words), burning the attempts
of the whole queue. Below the threshold the worker claims nothing, says why in
``fleet status``/``fleet explain``, and resumes by itself once space is freed.
"""

from __future__ import annotations

import os

from scheduler.settings import DEFAULT_MIN_FREE_MIB

MIB = 1024 * 1024


class DiskGate:
    def __init__(self, runs_dir: str, min_free_mib: float = DEFAULT_MIN_FREE_MIB):
        self.runs_dir = runs_dir
        self.min_free_mib = min_free_mib

    def free_mib(self) -> float:
        st = os.statvfs(self.runs_dir)
        return st.f_bavail * st.f_frsize / MIB

    def reason(self) -> str | None:
        """Why this worker must not claim right now, or None; 0 disables the check."""
        if self.min_free_mib <= 0:
            return None
        try:
            free = self.free_mib()
        except OSError as err:
            return f"runs dir {self.runs_dir} unreadable ({err.strerror})"
        if free < self.min_free_mib:
            return (f"disk full: {free:.1f} MiB free in {self.runs_dir} < --min-free-disk-mib "
                    f"{self.min_free_mib:g}; free space there and the worker resumes")
        return None
