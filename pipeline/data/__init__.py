"""Dataset readers (a registry keyed by layout), image/mask decoding, the folds table; synthetic
generators and annotation import in subfolders."""

from pipeline.data.base import Dataset, Sample
from pipeline.data.registry import READERS, open_dataset

__all__ = ["Dataset", "Sample", "READERS", "open_dataset"]
