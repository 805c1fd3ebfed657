"""Reading and writing files safely: the primitives `bptt.training.io` and the CLI build on.

- `read_regular_file`: only a regular file, under a size limit, opened without blocking (a FIFO
  or /dev/zero is refused at once, by name);
- `parse_json` / `dumps_strict`: strict JSON both ways (no NaN or Infinity: NaN is written as
  null; nesting past Python's recursion limit is an error naming the file);
- `atomic_write_bytes`: a temporary file in the same directory, fsync, `os.replace`, and never
  over anything but a regular file (`check_replaceable`): an interrupted write leaves the old
  file or the new one, never half of one, and /dev/full or a FIFO is not replaced;
  `atomic_write_files` does so for several files of a directory at once.
"""
from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Mapping


class FileReadError(ValueError):
    """A file bptt reads is missing, not a regular file, too large or not what it should be."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path, limit: int, error: type = FileReadError) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them, else `error` naming it.

    The file is opened without blocking and checked with `fstat` on the open descriptor before
    anything is read, so a FIFO (which would block forever) or a device such as /dev/zero
    (endless) is refused at once, as are directories and files over the limit.
    """
    where = os.fspath(path)
    try:
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise error(f"{where}: file not found") from None
    except OSError as failure:
        raise error(f"{where}: cannot read it ({failure.strerror or failure})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{where}: {_kind(info.st_mode)}, expected a regular file")
        if info.st_size > limit:
            raise error(f"{where}: {info.st_size} bytes, more than the {limit} bytes bptt reads "
                        f"from such a file")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 24, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while being read
                raise error(f"{where}: more than the {limit} bytes bptt reads from such a file")
        return b"".join(chunks)
    except OSError as failure:
        raise error(f"{where}: cannot read it ({failure.strerror or failure})") from None
    finally:
        os.close(fd)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (strict JSON has no NaN or Infinity; bptt writes null)")


def _refuse_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):  # json would keep the last silently
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def parse_json(data: bytes, where, error: type = FileReadError):
    """`data` parsed as strict JSON (no NaN/Infinity, no key twice in an object), or `error`
    naming `where`."""
    try:
        return json.loads(data, parse_constant=_refuse_constant,
                          object_pairs_hook=_refuse_duplicates)
    except RecursionError:
        raise error(f"{where}: not valid JSON (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as failure:  # JSONDecodeError is a ValueError
        raise error(f"{where}: not valid JSON ({failure})") from None


def strict_json(value):
    """`value` with every NaN or infinite float replaced by None (JSON null), for strict
    parsers: JSON has no NaN. Dicts, lists and tuples are copied; other values kept."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def dumps_strict(value, indent: int | None = 2) -> str:
    """`value` as strict JSON text (NaN and infinities as null, see `strict_json`)."""
    return json.dumps(strict_json(value), indent=indent, allow_nan=False)


def check_replaceable(path) -> Path:
    """The path an output at `path` will really be written to: `path` itself, or the file a
    symbolic link points to. A ValueError if something other than a regular file is there
    (a directory, a FIFO, a device such as /dev/full): bptt replaces only regular files."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path} is {_kind(mode)}; bptt writes only to a new path or over a "
                         f"regular file")
    return path


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and `os.replace`.

    Only a regular file (or nothing) at `path` is replaced; a symbolic link is followed.
    """
    path = Path(path)
    atomic_write_files(path.parent, {path.name: data})


def atomic_write_files(directory, files: Mapping[str, bytes]) -> None:
    """Write several files of `directory`, each atomically, in the order given.

    Every temporary file is written and flushed before the first is moved into place, so a
    failed write (disk full, a bad name, something not a regular file in the way) changes
    nothing; only a crash between two `os.replace` calls can leave some files new and others
    old: put the file that commits the set last.
    """
    directory = Path(directory)
    targets = [check_replaceable(directory / name) for name in files]
    temporaries = []
    try:
        for target, data in zip(targets, files.values()):
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                       suffix=".tmp")
            temporaries.append(tmp)
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, target in zip(list(temporaries), targets):
            check_replaceable(target)
            os.replace(tmp, target)
            temporaries.remove(tmp)
    finally:
        for tmp in temporaries:
            Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path, value) -> None:
    """Write `value` as indented strict JSON to `path`, atomically (see `atomic_write_bytes`):
    NaN and infinities are written as null."""
    atomic_write_bytes(path, (dumps_strict(value) + "\n").encode())
