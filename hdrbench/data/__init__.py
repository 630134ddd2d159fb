"""Datasets: cards (``datasets/*.toml``), readers, and the embedded ``synthetic`` scenes.

    >>> from hdrbench.data import get_dataset
    >>> ds = get_dataset("synthetic")                # generated once into the cache folder
    >>> scene = ds.load("test", ds.scenes("test")[0])
    >>> scene.stack.shape, scene.evs                 # (7, 3, 128, 128), [-3.0, ..., 3.0]

Readers are imported on demand by name (the card's ``loader`` key), so importing this package is cheap.
"""

from hdrbench.data.base import Dataset, Resolution, Scene, dataset_slug, get_dataset, list_datasets, parse_resolution
from hdrbench.data.cards import DatasetCard, load_card

__all__ = [
    "Dataset", "DatasetCard", "Resolution", "Scene", "dataset_slug", "get_dataset", "list_datasets", "load_card",
    "parse_resolution",
]
