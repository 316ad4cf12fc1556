"""The sections of ``python -m zerofwht.bench``: each has a worker that produces records (run once
per thread count, in a subprocess), a table renderer and a plot. A new section registers here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .fwht import fwht_worker
from .kron import kron_plot, kron_render, kron_worker
from .materialize import materialization_plot, materialization_render, materialization_worker
from .report import fwht_plot, fwht_render


@dataclass
class Section:
    name: str
    help: str
    worker: Callable[[dict, Optional[int]], dict]   # (config, threads) -> {"records": [...], ...}
    render: Callable[[list, dict, str], str]        # (records, meta, table style) -> text
    plot: Callable[[list, dict, str], Optional[str]]  # (records, meta, png path) -> path or None



SECTIONS = {
    "fwht": Section("fwht", "out-of-place transform vs copy, dense x @ H and public peers",
                    fwht_worker, fwht_render, fwht_plot),
    "materialization": Section("materialization", "zerofwht.init fills vs fill_ and the dense host recipe",
                               materialization_worker, materialization_render, materialization_plot),
    "kron": Section("kron", "exact K*2^k transform vs padding to 2^k and the two-pass recipe",
                    kron_worker, kron_render, kron_plot),
}
