"""How the visible GPUs reach each other, as NVML knows it: NVLink peers, else their PCIe path.

A later placement step prefers GPUs sharing the closest link, so for each pair this
finds the closest one NVML can name (``scheduler.resources.LINK_KINDS``). NVLink
peers are found by PCI bus id: each active link's remote end is a GPU's bus id
(a direct bridge) or an NVSwitch's (every GPU on that switch is a peer). Other pairs
get ``nvmlDeviceGetTopologyCommonAncestor``'s level.

A card without NVLink answers NOT_SUPPORTED, and a link index past the card's last
INVALID_ARGUMENT: both are normal and silent. Any other failure leaves the links it
would have shown unknown, and all such failures together make one note, so a
driver that breaks topology costs one line, not one per pair.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Sequence

# NVML_TOPOLOGY_* levels (pynvml's constants, fixed by the C API) -> LINK_KINDS.
ANCESTOR_KINDS = {0: "board", 10: "pcie-switch", 20: "pcie-switch", 30: "pcie-host", 40: "numa", 50: "system"}
_NO_SUCH_LINK = (3, 2)  # NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_INVALID_ARGUMENT
_FEATURE_ENABLED = 1
_NVLINK_SWITCH = 2  # NVML_NVLINK_DEVICE_TYPE_SWITCH


def bus_id(raw: Any) -> str:
    """A PCI bus id in one spelling: NVML gives "00000000:07:00.0", older calls "0000:07:00.0"."""
    text = (raw.decode() if isinstance(raw, bytes) else str(raw)).strip().lower()
    domain, sep, rest = text.partition(":")
    if not sep:
        return text
    try:
        return f"{int(domain, 16):08x}:{rest}"
    except ValueError:
        return text


class _Topology:
    def __init__(self, nvml: Any):
        self.nvml = nvml
        self.failed: dict[str, str] = {}  # NVML call -> its first error

    def call(self, what: str, fn, *args):
        """``(True, value)``, or ``(False, None)`` with the failure remembered for the one note."""
        try:
            return True, fn(*args)
        except self.nvml.NVMLError as err:
            self.failed.setdefault(what, str(err))
            return False, None

    def remote_ends(self, handle, gpu_buses: set[str]) -> tuple[set[str], set[str]] | None:
        """Bus ids at the far end of each active NVLink, as (GPUs, switches); None if unknown."""
        nvml = self.nvml
        gpus: set[str] = set()
        switches: set[str] = set()
        for link in range(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)):
            try:
                state = nvml.nvmlDeviceGetNvLinkState(handle, link)
            except nvml.NVMLError as err:
                if getattr(err, "value", None) in _NO_SUCH_LINK:
                    break  # no NVLink on this card, or past its last link
                self.failed.setdefault("NVLink state", str(err))
                return None
            if state != _FEATURE_ENABLED:
                continue
            ok, pci = self.call("NVLink remote PCI info", nvml.nvmlDeviceGetNvLinkRemotePciInfo, handle, link)
            if not ok:
                return None
            remote = bus_id(pci.busId)
            if remote in gpu_buses or not self.is_switch(handle, link):
                gpus.add(remote)
            else:
                switches.add(remote)
        return gpus, switches

    def is_switch(self, handle, link: int) -> bool:
        """Whether a link ends at an NVSwitch; drivers too old to say have none."""
        try:
            return self.nvml.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link) == _NVLINK_SWITCH
        except (self.nvml.NVMLError, AttributeError):
            return False


def probe_links(nvml: Any, devices: Sequence[tuple[int, Any]], notes: list[str]) -> tuple[tuple[int, int, str], ...]:
    """``(a, b, kind)`` for each pair of ``devices`` (visible index, NVML handle) whose link NVML knows."""
    if len(devices) < 2:
        return ()
    topo = _Topology(nvml)
    buses: dict[int, str | None] = {}
    for index, handle in devices:
        ok, pci = topo.call("PCI info", nvml.nvmlDeviceGetPciInfo, handle)
        buses[index] = bus_id(pci.busId) if ok else None
    known = {b for b in buses.values() if b}
    ends = {index: topo.remote_ends(handle, known) for index, handle in devices}
    links = []
    for (a, ha), (b, hb) in combinations(devices, 2):
        if _nvlinked(ends[a], buses[b]) or _nvlinked(ends[b], buses[a]) or _same_switch(ends[a], ends[b]):
            kind: str | None = "nvlink"
        else:
            ok, level = topo.call("common PCIe ancestor", nvml.nvmlDeviceGetTopologyCommonAncestor, ha, hb)
            kind = ANCESTOR_KINDS.get(level) if ok else None
        if kind:
            links.append((min(a, b), max(a, b), kind))
    if topo.failed:
        notes.append("GPU links partly unknown: " + "; ".join(f"{what}: {err}" for what, err in topo.failed.items()))
    return tuple(sorted(links))


def _nvlinked(ends: tuple[set[str], set[str]] | None, peer_bus: str | None) -> bool:
    return ends is not None and peer_bus is not None and peer_bus in ends[0]


def _same_switch(a: tuple[set[str], set[str]] | None, b: tuple[set[str], set[str]] | None) -> bool:
    return a is not None and b is not None and bool(a[1] & b[1])
