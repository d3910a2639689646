# Type stub of featx's lazily exported public API: what `import featx` offers, for IDEs
# and type checkers (the names are imported on first use; see featx/__init__.py).
from ._version import __version__ as __version__
from .api import extract_features as extract_features
from .api import load_bundle as load_bundle
from .api import train as train
from .bundle import Bundle as Bundle
from .data.splits import GroupedSplit as GroupedSplit
from .data.table import FeatureTable as FeatureTable
from .data.table import read_feature_csv as read_feature_csv
from .errors import AudioError as AudioError
from .errors import BundleError as BundleError
from .errors import ConfigError as ConfigError
from .errors import DataError as DataError
from .errors import FeatxError as FeatxError
from .errors import OutputError as OutputError
from .errors import TrainingError as TrainingError
from .estimator import GenreClassifier as GenreClassifier
from .extract.runner import run_extraction as run_extraction
from .extract.spectro_runner import run_spectrograms as run_spectrograms
from .features.settings import FeatureSettings as FeatureSettings
from .training.config import TrainConfig as TrainConfig

__all__ = [
    "__version__", "extract_features", "train", "load_bundle", "FeatureSettings", "run_extraction",
    "run_spectrograms", "read_feature_csv", "FeatureTable", "TrainConfig", "Bundle", "GenreClassifier",
    "GroupedSplit", "FeatxError", "AudioError", "BundleError", "ConfigError", "DataError", "OutputError",
    "TrainingError",
]
