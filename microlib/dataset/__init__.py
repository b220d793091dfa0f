"""Use a packaged MicroLib-style dataset: read it, extract it safely, fetch it.

Examples
--------
>>> from microlib.dataset import Dataset                         # doctest: +SKIP
>>> with Dataset("data/microlibDataset.zip") as ds:               # doctest: +SKIP
...     vol = ds.synthesise("microstructure003", size=256, seed=1)
"""

from __future__ import annotations

from microlib.dataset.extract import check_member, extract_archive, safe_extract
from microlib.dataset.read import DATASET_DIR, Dataset, clean_text, read_json_capped

__all__ = [
    "DATASET_DIR",
    "Dataset",
    "check_member",
    "clean_text",
    "extract_archive",
    "read_json_capped",
    "safe_extract",
]
