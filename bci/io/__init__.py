"""Reading and writing data: the HYPER seed pickles (safely) and the bci npz dataset format."""

from bci.io.datasets import FORMAT_VERSION, DecodingDataset, load_dataset, save_dataset
from bci.io.seed_data import RefusedPickleError, SeedData, load_seed_data

__all__ = [
    "FORMAT_VERSION",
    "DecodingDataset",
    "RefusedPickleError",
    "SeedData",
    "load_dataset",
    "load_seed_data",
    "save_dataset",
]
