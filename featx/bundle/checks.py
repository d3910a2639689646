"""Checks of a bundle's ``metadata.json``: the fields every bundle has.

Each field featx reads is checked for its type and range before it is used, so a
tampered or damaged bundle is one ``corrupt bundle: <file>: <field> ...`` error
(:func:`featx.models.fields.corrupt`). What a model family records about its own
input is checked by the family itself when it loads.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from ..errors import BundleError, FeatxError
from ..io.digest import file_sha256
from ..models.fields import check_int, check_names, corrupt, is_int, is_number
from ..training.confidence import check_confidence
from .folder import MODEL_FILES

__all__ = ["check_metadata", "check_params", "check_agreement", "check_digests"]

_OPTIONAL_TEXT = ("created", "settings_source", "split", "device", "kind", "input")
_OPTIONAL_FLAGS = ("segmented", "leaky_split", "multi_label")


def _param_type_ok(kind: str, value) -> bool:
    if kind == "float":
        return is_number(value)
    if kind == "int":
        return is_int(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "ints":
        return isinstance(value, list) and all(is_int(v) for v in value)
    return isinstance(value, str)


def check_params(path: Path, spec, params) -> dict:
    """Hyperparameters of ``spec`` as saved: typed as the registry says and in its ranges.

    Returns the resolved parameters.
    """
    if not isinstance(params, dict):
        raise corrupt(path, "params", "must be an object of hyperparameters", params)
    for name, value in params.items():
        param = spec.params.get(name)
        if param is not None and not _param_type_ok(param.kind, value):
            kinds = {"float": "a number", "int": "an integer", "bool": "true or false",
                     "ints": "a list of integers", "str": "text"}
            raise corrupt(path, f"params.{name}", f"must be {kinds.get(param.kind, param.kind)}", value)
    try:
        return spec.resolve(params)
    except FeatxError as exc:
        raise BundleError(f"corrupt bundle: {path}: params: {exc}") from None


def check_metadata(path: Path, metadata: dict, spec) -> dict:
    """Check the fields of ``metadata.json`` that every bundle has; returns the resolved hyperparameters.

    ``spec`` is the model the metadata names. The fields that describe the model's
    input (columns, settings, sequence length, image settings) are checked by its
    family when it loads (:meth:`featx.models.base.ModelFamily.load`), and the classes
    against ``preprocessing.json`` by :func:`check_agreement`.
    """
    check_names(path, "feature_columns", metadata.get("feature_columns"))
    check_names(path, "classes", metadata.get("classes"))
    for name in _OPTIONAL_TEXT:
        if metadata.get(name) is not None and not isinstance(metadata[name], str):
            raise corrupt(path, name, "must be text", metadata[name])
    for name in _OPTIONAL_FLAGS:
        if name in metadata and not isinstance(metadata[name], bool):
            raise corrupt(path, name, "must be true or false", metadata[name])
    if metadata.get("kind") not in (None, spec.kind):
        raise corrupt(path, "kind", f"must be {spec.kind!r} for model {spec.name!r}", metadata["kind"])
    if metadata.get("input") not in (None, spec.input):
        raise corrupt(path, "input", f"must be {spec.input!r} for model {spec.name!r}", metadata["input"])
    if "seed" in metadata:
        check_int(path, "seed", metadata["seed"], high=2**32 - 1)
    if "train_seconds" in metadata and not (is_number(metadata["train_seconds"])
                                            and math.isfinite(metadata["train_seconds"])):
        raise corrupt(path, "train_seconds", "must be a number", metadata["train_seconds"])
    for name in ("versions", "config", "files"):
        if name in metadata and not isinstance(metadata[name], dict):
            raise corrupt(path, name, "must be an object", metadata[name])
    if "config" not in metadata:
        raise corrupt(path, "config", "must be present (the training configuration)", None, received=False)
    check_int(path, "config.folds", metadata["config"].get("folds"), low=1, high=100_000)
    for key, value in (metadata.get("versions") or {}).items():
        if not isinstance(value, str):
            raise corrupt(path, f"versions.{key}", "must be text", value)
    final = metadata.get("final_fit")
    if final is not None:
        if not isinstance(final, dict):
            raise corrupt(path, "final_fit", "must be an object", final)
        for name in ("n_train", "n_valid"):
            if name in final:
                check_int(path, f"final_fit.{name}", final[name])
        if "seed" in final:
            check_int(path, "final_fit.seed", final["seed"], high=2**32 - 1)
        if "rows" in final and not isinstance(final["rows"], str):
            raise corrupt(path, "final_fit.rows", "must be text", final["rows"])
        if "tracks" in final:
            check_names(path, "final_fit.tracks", final["tracks"], empty=True)
    data = metadata.get("training_data")
    if data is not None:
        if not isinstance(data, dict):
            raise corrupt(path, "training_data", "must be an object", data)
        for name in ("path", "sha256"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise corrupt(path, f"training_data.{name}", "must be text", data[name])
        for name in ("rows", "tracks"):
            if data.get(name) is not None:
                check_int(path, f"training_data.{name}", data[name])
    check_confidence(metadata.get("confidence"), str(path))
    return check_params(path, spec, metadata.get("params", {}))


def check_agreement(path: Path, metadata: dict, model) -> None:
    """``metadata.json``'s classes and label kind agree with the loaded model's preprocessing."""
    if metadata.get("classes") != model.classes:
        raise corrupt(path, "classes", "must equal the classes of preprocessing.json", metadata.get("classes"))
    if metadata.get("multi_label", model.multi_label) != model.multi_label:
        raise corrupt(path, "multi_label", "must agree with the label encoding of preprocessing.json",
                      metadata["multi_label"])


_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_digests(path: Path, metadata: dict) -> None:
    """The bundle's model files are the ones saved with its ``metadata.json`` (at ``path``).

    ``files.sha256`` of ``metadata.json`` maps each model file (:data:`~featx.bundle.folder.MODEL_FILES`)
    to the SHA-256 it had when the bundle was written. Every listed file must still have it,
    and every model file in the folder must be listed, so that no file copied from another
    bundle (even one of the same model, columns and hyperparameters) is read. A missing
    file, or one that is not a plain file, is left to the model's family, which names it
    (a bundle whose ``model_arrays.npz`` was deleted still predicts with scikit-learn). A
    bundle written before featx recorded digests (no ``files.sha256``) is not checked here.

    Raises
    ------
    BundleError
        The field is malformed, a listed file differs, or a model file is not listed (one
        line naming the file).
    """
    digests = (metadata.get("files") or {}).get("sha256")
    if digests is None:
        return
    if not isinstance(digests, dict):
        raise corrupt(path, "files.sha256", "must be an object of file names and SHA-256 digests", digests)
    for name, digest in digests.items():
        if name not in MODEL_FILES:
            raise corrupt(path, "files.sha256", f"must name model files only ({', '.join(MODEL_FILES)})", name)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise corrupt(path, f"files.sha256.{name}", "must be a SHA-256 digest (64 lowercase hex digits)",
                          digest)
    directory = path.parent
    for name in MODEL_FILES:
        file = directory / name
        # only plain files are hashed: a missing file, a FIFO or a folder is left to the model's
        # family, which names it (and never waits on it)
        if not file.is_file():
            continue
        if name not in digests:
            raise BundleError(f"corrupt bundle: {file}: not one of the files this bundle was saved with "
                              "(metadata.json lists no digest for it); the bundle's files do not belong together")
        try:
            actual = file_sha256(file)
        except OSError as exc:
            raise BundleError(f"corrupt bundle: {file}: cannot be read ({exc.strerror or exc})") from None
        if actual != digests[name]:
            raise BundleError(f"corrupt bundle: {file}: its SHA-256 is not the one metadata.json records; the "
                              "bundle's files do not belong together (a file was replaced or changed after "
                              "saving)")
