"""Splits that are read on demand instead of loaded whole.

Two forms keep a large target pool out of memory:

- a split folder holding ``x.npy`` (and ``y.npy``) is opened with
  ``np.load(..., mmap_mode="r")``: indexing it reads only the rows asked for;
- an image folder becomes an :class:`ImageFolderArray`, an array-like that
  decodes only the images an index asks for, keeping a small, bounded LRU of
  decoded images.

Both are indexed like arrays (``x[i]``, ``x[start:stop]``, ``x[int_array]``)
and expose ``len``, ``shape``, ``ndim`` and ``dtype``, so every consumer that
does ``split.x[idx]`` works unchanged. Pages of a memory map that were read
stay counted in the process's resident memory until the kernel needs them, so
code that streams over a whole split calls :func:`release_pages` as it goes.
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xdistill.errors import XDistillError

DECODED_CACHE_BYTES = 32 * 1024 * 1024  # decoded images an ImageFolderArray keeps (LRU), in bytes
VALIDATION_ROWS = 10_000  # rows of a lazy split whose values are checked at load time


def decode_image(path: Path) -> np.ndarray:
    """One image file as uint8 [H, W] (grey) or [H, W, 3] (anything else becomes RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGB")
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise XDistillError(f"Cannot read image '{path}' ({exc}). Remove it or replace it with a valid image.") from exc


class ImageFolderArray:
    """The images of a folder as a read-only uint8 array [N, H, W] or [N, H, W, C], decoded on demand.

    ``relative`` are the image files' paths relative to ``root`` (``"cat/001.png"``), in sample
    order; they are kept as one array of UTF-8 bytes (about their length per image, not a Python
    object each). ``shape`` comes from ``first_shape`` (one image's [H, W] or [H, W, C]), and an
    image of another shape is an error when it is decoded. Up to :data:`DECODED_CACHE_BYTES` of
    decoded images are kept, least recently used dropped first.
    """

    dtype = np.dtype(np.uint8)

    def __init__(self, root: Path, relative: Sequence[str], first_shape: tuple[int, ...],
                 decoder: Callable[[Path], np.ndarray] | None = None) -> None:
        self.root = Path(root)
        self.relative = np.array([r.encode("utf-8") for r in relative], dtype=np.bytes_)
        self.image_shape = tuple(int(s) for s in first_shape)
        self._decoder = decoder
        self._decoded: OrderedDict[int, np.ndarray] = OrderedDict()
        self._capacity = max(1, DECODED_CACHE_BYTES // max(1, int(np.prod(self.image_shape))))
        self.decoded_count = 0  # images decoded so far (cache misses)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.relative), *self.image_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.image_shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.relative)

    def __repr__(self) -> str:
        return f"ImageFolderArray({len(self.relative)} images of shape {self.image_shape})"

    def relative_path(self, i: int) -> str:
        """Sample ``i``'s file, relative to the folder."""
        return self.relative[i].decode("utf-8")

    def path(self, i: int) -> Path:
        """Sample ``i``'s file."""
        return self.root / self.relative_path(i)

    def _image(self, i: int) -> np.ndarray:
        found = self._decoded.get(i)
        if found is not None:
            self._decoded.move_to_end(i)
            return found
        image = (self._decoder or decode_image)(self.path(i))
        self.decoded_count += 1
        if image.shape != self.image_shape:
            raise XDistillError(
                f"The image '{self.path(i)}' is {image.shape}, but the split's images are {self.image_shape}. "
                "Resize every image of a task to one size."
            )
        self._decoded[i] = image
        if len(self._decoded) > self._capacity:
            self._decoded.popitem(last=False)
        return image

    def __getitem__(self, index) -> np.ndarray:
        n = len(self.relative)
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {n} images")
            return self._image(i % n)
        if isinstance(index, slice):
            positions = np.arange(n)[index]
        else:
            positions = np.asarray(index)
            if positions.dtype == bool:
                positions = np.flatnonzero(positions)
            if positions.ndim != 1 or positions.dtype.kind not in "iu":
                raise IndexError("an ImageFolderArray is indexed by an int, a slice or a 1-D array of positions")
            if len(positions) and (positions.min() < -n or positions.max() >= n):
                raise IndexError(f"an index is out of bounds for {n} images")
            positions = positions % n if len(positions) else positions
        out = np.empty((len(positions), *self.image_shape), dtype=np.uint8)
        for row, i in enumerate(positions.tolist()):
            out[row] = self._image(i)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every image decoded (memory grows with the split: for small splits only)."""
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


def is_lazy(x) -> bool:
    """Whether ``x`` is read on demand (a memory map or an image folder) rather than held in memory."""
    return isinstance(x, (np.memmap, ImageFolderArray))


def release_pages(x) -> None:
    """Drop the pages of a memory-mapped array from this process's resident set.

    The data stays in the operating system's page cache, so re-reading is cheap; without this,
    every page a pass over a memory map touched counts in the process's resident memory. A no-op
    for anything else.
    """
    handle = getattr(x, "_mmap", None)
    if isinstance(x, np.memmap) and handle is not None and hasattr(handle, "madvise"):
        try:
            handle.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed map, or a platform without the advice
            pass


def evenly_spaced(n: int, size: int) -> np.ndarray:
    """``min(n, size)`` sorted positions in 0..n-1 spread evenly over the range (all of them when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, size).round().astype(np.int64))


def bounded_rows(x, size: int = VALIDATION_ROWS) -> np.ndarray:
    """``x`` itself when held in memory, else an evenly spaced sample of at most ``size`` of its rows."""
    if not is_lazy(x):
        return x
    rows = np.asarray(x[evenly_spaced(len(x), size)])
    release_pages(x)
    return rows


__all__ = ["DECODED_CACHE_BYTES", "VALIDATION_ROWS", "ImageFolderArray", "bounded_rows", "decode_image", "evenly_spaced",
           "is_lazy", "release_pages"]
