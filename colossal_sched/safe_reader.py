"""Reading DCP checkpoints without running code from them.

``torch.distributed.checkpoint.FileSystemReader.read_metadata`` is a plain ``pickle.load`` of the
``.metadata`` file, so a tampered checkpoint runs whatever its pickle names. :class:`SafeFileSystemReader`
reads it with :class:`MetadataUnpickler`, which admits only DCP's metadata classes and the torch
types they hold, and checks that every storage file the metadata names is a plain file name inside
the checkpoint. Pass it to any ``dcp.load``::

    dcp.load(state, storage_reader=SafeFileSystemReader(path), planner=SafeLoadPlanner())
"""
from __future__ import annotations

import inspect
import io
import os
import pickle
import stat
from typing import Any, BinaryIO

import torch
import torch.distributed.checkpoint.metadata as _dcp_metadata
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from .errors import CheckpointError

METADATA_FILE = ".metadata"
MAX_METADATA_BYTES = 256 << 20
"""A ``.metadata`` larger than this is refused before it is read (a real one is KiB to a few MiB)."""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {}
    for name, value in vars(_dcp_metadata).items():  # Metadata, MetadataIndex, ..., _MEM_FORMAT_ENCODING
        if inspect.isclass(value) and value.__module__ == _dcp_metadata.__name__:
            allowed[(_dcp_metadata.__name__, name)] = value
    allowed[(_StorageInfo.__module__, "_StorageInfo")] = _StorageInfo
    allowed[("torch", "Size")] = torch.Size
    for name, value in vars(torch).items():  # torch.float32, torch.channels_last, ...
        if isinstance(value, (torch.dtype, torch.memory_format, torch.layout)):
            allowed[("torch", name)] = value
    allowed[("torch.serialization", "_get_layout")] = torch.serialization._get_layout
    import pathlib

    for cls in (pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath):
        allowed[("pathlib", cls.__name__)] = cls
        allowed[(cls.__module__, cls.__name__)] = cls  # pathlib._local on Python 3.13
    import collections

    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    for cls in (set, frozenset, complex, slice):
        allowed[("builtins", cls.__name__)] = cls
    return allowed


SAFE_GLOBALS = _allowed_globals()
"""``(module, name) -> object``: every global a ``.metadata`` pickle may name."""


class MetadataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`SAFE_GLOBALS`; anything else is a :class:`CheckpointError`
    naming the global, raised before it is imported or called."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise CheckpointError(f"refusing to unpickle global {str(module)[:100]}.{str(name)[:100]}: "
                                  "not a DCP metadata type") from None

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("refusing a persistent id in DCP metadata")


def load_metadata(stream: BinaryIO, where: str = ".metadata") -> Metadata:
    """DCP :class:`Metadata` from ``stream``, unpickled with :class:`MetadataUnpickler` and checked.

    Raises :class:`CheckpointError` (naming ``where``) for a forbidden global, a truncated or
    corrupt pickle, or storage entries that point outside the checkpoint directory.
    """
    try:
        metadata = MetadataUnpickler(stream).load()
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from None
    except (Exception, RecursionError) as e:  # truncated, corrupt: any unpickling failure
        raise CheckpointError(f"{where}: unreadable DCP metadata ({type(e).__name__}: {str(e)[:200]})") from None
    check_metadata(metadata, where)
    return metadata


def check_metadata(metadata: Any, where: str = ".metadata") -> None:
    """Refuse metadata that is not DCP :class:`Metadata` or names storage outside its directory."""
    if not isinstance(metadata, Metadata) or not isinstance(metadata.state_dict_metadata, dict):
        raise CheckpointError(f"{where}: not DCP metadata (got {type(metadata).__name__})")
    storage = metadata.storage_data
    if storage is None:
        return
    if not isinstance(storage, dict):
        raise CheckpointError(f"{where}: storage_data is a {type(storage).__name__}, expected a dict")
    for info in storage.values():
        if not isinstance(info, _StorageInfo):
            raise CheckpointError(f"{where}: storage entry is a {type(info).__name__}, expected _StorageInfo")
        path = info.relative_path
        if (not isinstance(path, str) or not path or path in (".", "..") or "/" in path or "\\" in path
                or "\0" in path or len(path) > 255):
            raise CheckpointError(f"{where}: storage file name {str(path)[:100]!r} is not a plain file name")
        for field in ("offset", "length"):
            value = getattr(info, field)
            if type(value) is not int or value < 0:
                raise CheckpointError(f"{where}: storage {field} of {path!r} is {str(value)[:50]}, expected an int >= 0")


def missing_files(checkpoint_dir: str, metadata: Metadata) -> list[str]:
    """The storage files ``metadata`` names that are absent, not plain files, or shorter than it says."""
    need: dict[str, int] = {}  # file name: the bytes it must hold at least
    for info in (metadata.storage_data or {}).values():
        need[info.relative_path] = max(need.get(info.relative_path, 0), info.offset + info.length)
    bad = []
    for name, size in sorted(need.items()):
        try:
            st = os.lstat(os.path.join(checkpoint_dir, name))
        except OSError:
            bad.append(f"{name} (missing)")
            continue
        if not stat.S_ISREG(st.st_mode):
            bad.append(f"{name} (not a regular file)")
        elif st.st_size < size:
            bad.append(f"{name} (truncated: {st.st_size} < {size} bytes)")
    return bad


def read_metadata_file(checkpoint_dir: str) -> Metadata:
    """The checked :class:`Metadata` of the DCP checkpoint in ``checkpoint_dir`` (no code run)."""
    path = os.path.join(checkpoint_dir, METADATA_FILE)
    try:
        st = os.lstat(path)
    except OSError:
        raise CheckpointError(f"{checkpoint_dir} is not a complete DCP checkpoint (no .metadata)") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: not a regular file (a symlink or special file is never read as metadata)")
    if st.st_size > MAX_METADATA_BYTES:
        raise CheckpointError(f"{path}: {st.st_size} bytes, larger than the {MAX_METADATA_BYTES}-byte limit")
    with open(path, "rb") as f:
        return load_metadata(io.BytesIO(f.read()), path)


class SafeFileSystemReader(FileSystemReader):
    """``FileSystemReader`` whose ``read_metadata`` never runs code from the checkpoint.

    The ``.metadata`` pickle is read with :class:`MetadataUnpickler` (DCP's metadata classes and
    the torch types they hold only) and every storage file it names must be a plain file name
    inside the checkpoint; anything else raises :class:`CheckpointError`.
    """

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        rank = kwargs.get("rank")
        path = self._get_metadata_path(rank)
        with self.fs.create_stream(path, "rb") as f:
            data = f.read(MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            raise CheckpointError(f"{path}: larger than the {MAX_METADATA_BYTES}-byte limit for DCP metadata")
        metadata = load_metadata(io.BytesIO(data), str(path))
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """A DCP load planner that reads non-tensor entries with ``torch.load(weights_only=True)``."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            obj = torch.load(value, weights_only=True)
        except Exception as e:
            raise CheckpointError(f"refusing checkpoint entry {fqn!r}: not plain data ({type(e).__name__}: "
                                  f"{str(e)[:200]})") from e
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[fqn], obj)
        else:
            self.state_dict[fqn] = obj


__all__ = ["SafeFileSystemReader", "SafeLoadPlanner", "MetadataUnpickler", "SAFE_GLOBALS", "load_metadata",
           "read_metadata_file", "missing_files", "check_metadata"]
