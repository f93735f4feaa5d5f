"""Reading and writing data: the HYPER seed pickles (safely), the bci npz dataset format, and
recordings (XDF through pyxdf, anything MNE reads) with their export to MNE."""

from bci.io.datasets import FORMAT_VERSION, DecodingDataset, load_dataset, save_dataset
from bci.io.mne_export import to_mne
from bci.io.recording import read_recording, read_recording_parts
from bci.io.seed_data import RefusedPickleError, SeedData, load_seed_data
from bci.io.streams import RecordedStream, Recording

__all__ = [
    "FORMAT_VERSION",
    "DecodingDataset",
    "RecordedStream",
    "Recording",
    "RefusedPickleError",
    "SeedData",
    "load_dataset",
    "load_seed_data",
    "read_recording",
    "read_recording_parts",
    "save_dataset",
    "to_mne",
]
