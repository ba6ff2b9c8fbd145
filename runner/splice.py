"""Parquet files joined into one without decoding them: their row groups' bytes copied, their footers merged.

The sweep's ``traces.parquet`` is its chunk files one after the other. Reading them into Arrow and
encoding them again costs about as much as computing the runs, and it is serial: the chunks
ran on every core, the file would be written on one. Parquet keeps a file's data in row groups,
byte ranges that only the footer points into, so files of one schema join by copying those
ranges and writing a footer that lists all their row groups, each offset moved by where its
bytes now start (what parquet-java's ``ParquetFileWriter.appendFile`` and arrow-rs's column
splicing do; pyarrow has no such call).

The footer is Thrift's compact protocol (parquet.thrift's ``FileMetaData``). It is decoded into
a plain tree, field by field, and encoded again; only the fields named below are changed. Files
that use what this does not move (a page index, bloom filters, encryption, a column in another
file) are refused with :class:`CannotSplice`, and so are files whose schemas differ: the caller
encodes those again.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

MAGIC = b"PAR1"

# Thrift compact protocol's field types.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)

# parquet.thrift field ids of what a splice reads or changes.
FILE_SCHEMA, FILE_NUM_ROWS, FILE_ROW_GROUPS, FILE_KEY_VALUES, FILE_COLUMN_ORDERS = 2, 3, 4, 5, 7
FILE_ENCRYPTION = (8, 9)
GROUP_COLUMNS, GROUP_FILE_OFFSET, GROUP_ORDINAL = 1, 5, 7
CHUNK_FILE_PATH, CHUNK_FILE_OFFSET, CHUNK_META = 1, 2, 3
CHUNK_PAGE_INDEX_AND_CRYPTO = (4, 5, 6, 7, 8, 9)  # offset and column index, encryption: not moved here
META_OFFSETS = (9, 10, 11)  # data_page_offset, index_page_offset, dictionary_page_offset
META_BLOOM_FILTER = (14, 15)


class CannotSplice(ValueError):
    """The files cannot be joined byte for byte (schemas differ, or a feature this does not move)."""


# ----------------------------------------------------------------------------- Thrift compact protocol
# A struct is a list of [field_id, type, value]; a list is (element_type, [values]); a map is
# (key_type, value_type, [(key, value)]). Booleans inside lists keep their byte.


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _read_value(data: bytes, pos: int, kind: int):
    if kind in (_TRUE, _FALSE):  # a boolean list element: its byte (a field's boolean is in its header)
        return data[pos], pos + 1
    if kind == _BYTE:
        return data[pos], pos + 1
    if kind in (_I16, _I32, _I64):
        n, pos = _varint(data, pos)
        return _zigzag(n), pos
    if kind == _DOUBLE:
        return data[pos : pos + 8], pos + 8
    if kind == _BINARY:
        n, pos = _varint(data, pos)
        return data[pos : pos + n], pos + n
    if kind in (_LIST, _SET):
        header = data[pos]
        pos += 1
        size, element = header >> 4, header & 0x0F
        if size == 15:
            size, pos = _varint(data, pos)
        values = []
        for _ in range(size):
            value, pos = _read_value(data, pos, element)
            values.append(value)
        return (element, values), pos
    if kind == _MAP:
        size, pos = _varint(data, pos)
        if size == 0:
            return (0, 0, []), pos
        types = data[pos]
        pos += 1
        key_type, value_type = types >> 4, types & 0x0F
        pairs = []
        for _ in range(size):
            key, pos = _read_value(data, pos, key_type)
            value, pos = _read_value(data, pos, value_type)
            pairs.append((key, value))
        return (key_type, value_type, pairs), pos
    if kind == _STRUCT:
        return _read_struct(data, pos)
    raise CannotSplice(f"footer: Thrift type {kind} at byte {pos}: expected a compact-protocol type")


def _read_struct(data: bytes, pos: int) -> tuple[list, int]:
    fields, last = [], 0
    while True:
        header = data[pos]
        pos += 1
        kind = header & 0x0F
        if kind == _STOP:
            return fields, pos
        delta = header >> 4
        if delta:
            field_id = last + delta
        else:
            n, pos = _varint(data, pos)
            field_id = _zigzag(n)
        if kind in (_TRUE, _FALSE):
            value = kind == _TRUE
        else:
            value, pos = _read_value(data, pos, kind)
        fields.append([field_id, kind, value])
        last = field_id


def _put_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _put_zigzag(out: bytearray, n: int) -> None:
    _put_varint(out, (n << 1) ^ (n >> 63))


def _write_value(out: bytearray, kind: int, value) -> None:
    if kind in (_TRUE, _FALSE, _BYTE):
        out.append(value)
    elif kind in (_I16, _I32, _I64):
        _put_zigzag(out, value)
    elif kind in (_DOUBLE,):
        out += value
    elif kind == _BINARY:
        _put_varint(out, len(value))
        out += value
    elif kind in (_LIST, _SET):
        element, values = value
        if len(values) < 15:
            out.append(len(values) << 4 | element)
        else:
            out.append(0xF0 | element)
            _put_varint(out, len(values))
        for item in values:
            _write_value(out, element, item)
    elif kind == _MAP:
        key_type, value_type, pairs = value
        _put_varint(out, len(pairs))
        if pairs:
            out.append(key_type << 4 | value_type)
            for key, item in pairs:
                _write_value(out, key_type, key)
                _write_value(out, value_type, item)
    elif kind == _STRUCT:
        _write_struct(out, value)
    else:
        raise CannotSplice(f"footer: Thrift type {kind}: expected a compact-protocol type")


def _write_struct(out: bytearray, fields: list) -> None:
    last = 0
    for field_id, kind, value in fields:
        if kind in (_TRUE, _FALSE):
            kind = _TRUE if value else _FALSE
        if 0 < field_id - last <= 15:
            out.append((field_id - last) << 4 | kind)
        else:
            out.append(kind)
            _put_zigzag(out, field_id)
        if kind not in (_TRUE, _FALSE):
            _write_value(out, kind, value)
        last = field_id
    out.append(_STOP)


def _field(fields: list, field_id: int):
    """The field ``[id, type, value]`` of a struct, or None."""
    return next((f for f in fields if f[0] == field_id), None)


def _encoded(value, kind: int = _STRUCT) -> bytes:
    out = bytearray()
    _write_value(out, kind, value)
    return bytes(out)


# ----------------------------------------------------------------------------- parquet files


def read_footer(path: Path) -> tuple[list, int]:
    """``(FileMetaData as a field tree, where the footer starts)`` of a parquet file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(size - 8)
        tail = f.read(8)
        length = struct.unpack("<I", tail[:4])[0]
        if tail[4:] != MAGIC or length + 12 > size:
            raise CannotSplice(f"{path}: not a parquet file (no footer)")
        f.seek(size - 8 - length)
        footer = f.read(length)
        f.seek(0)
        if f.read(4) != MAGIC:
            raise CannotSplice(f"{path}: not a parquet file (no leading PAR1)")
    fields, _ = _read_struct(footer, 0)
    return fields, size - 8 - length


def _moved_row_groups(metadata: list, shift: int, first_ordinal: int, path: Path) -> list:
    """The file's row groups with every offset moved by ``shift`` bytes and ordinals from ``first_ordinal``."""
    field = _field(metadata, FILE_ROW_GROUPS)
    groups = field[2][1] if field else []
    for k, group in enumerate(groups):
        for f in group:
            if f[0] == GROUP_FILE_OFFSET:
                f[2] += shift
            elif f[0] == GROUP_ORDINAL:
                f[2] = first_ordinal + k
        for chunk in _field(group, GROUP_COLUMNS)[2][1]:
            for f in chunk:
                if f[0] == CHUNK_FILE_OFFSET and f[2]:  # 0: not set (deprecated field)
                    f[2] += shift
                elif f[0] == CHUNK_FILE_PATH or f[0] in CHUNK_PAGE_INDEX_AND_CRYPTO:
                    raise CannotSplice(f"{path}: a column chunk with field {f[0]} (page index, encryption, file path)")
            meta = _field(chunk, CHUNK_META)
            if meta is None:
                raise CannotSplice(f"{path}: a column chunk without its metadata")
            for f in meta[2]:
                if f[0] in META_OFFSETS:
                    f[2] += shift
                elif f[0] in META_BLOOM_FILTER:
                    raise CannotSplice(f"{path}: a column with a bloom filter")
    return groups


class Joiner:
    """Parquet files of one schema joined as they come: each file's row groups are copied to the end of
    ``out_path`` when it is added, and :meth:`finish` writes the footer that lists them all.

    What :func:`splice` does at once, spread over time: a sweep adds each chunk's file as its chunk
    ends, while the other chunks still run, and has its ``traces.parquet`` once the last one is in.
    A file whose schema differs from the first one's, or that uses what a splice does not move,
    raises :class:`CannotSplice`; so does :meth:`finish` when a file added has changed since.
    """

    def __init__(self, out_path: Path):
        self.out_path = Path(out_path)
        self.added: list[tuple[Path, list, int, tuple]] = []  # (path, footer, data end, (size, mtime))
        self._first: tuple[Path, list] | None = None  # the file the others' columns are checked against
        self._out = None

    def check(self, path: Path, metadata: list) -> None:
        """Raise :class:`CannotSplice` unless ``metadata`` (a file's footer) can join the files checked before:
        what it says of the columns (schema, key-value metadata, column orders) is the first file's, it is
        not encrypted, and it holds nothing a splice does not move."""
        if any(_field(metadata, f) for f in FILE_ENCRYPTION):
            raise CannotSplice(f"{path}: encrypted")
        if self._first is None:
            self._first = (path, metadata)
        first_path, first = self._first
        for field_id in (FILE_SCHEMA, FILE_KEY_VALUES, FILE_COLUMN_ORDERS):
            a, b = _field(first, field_id), _field(metadata, field_id)
            if (a is None) != (b is None) or (a is not None and _encoded(a[2], a[1]) != _encoded(b[2], b[1])):
                raise CannotSplice(f"{path}: its schema or column metadata differ from {first_path}'s")
        _moved_row_groups(metadata, 0, 0, path)  # moved by nothing: raises for what a splice does not move

    def add(self, path: Path, footer: tuple[list, int] | None = None) -> None:
        """Copy ``path``'s row groups to the end of the file being built (``footer``: its :func:`read_footer`)."""
        path = Path(path)
        metadata, data_end = read_footer(path) if footer is None else footer
        self.check(path, metadata)
        stat = path.stat()
        if self._out is None:
            self._out = open(self.out_path, "wb")  # noqa: SIM115 (closed by finish or discard)
            self._out.write(MAGIC)
        with open(path, "rb") as source:
            source.seek(len(MAGIC))
            _copy(source, self._out, data_end - len(MAGIC))
        self.added.append((path, metadata, data_end, (stat.st_size, stat.st_mtime_ns)))

    def finish(self) -> int:
        """Write the footer of every file added, in the order added, and close the file; return its rows."""
        if not self.added:
            raise CannotSplice("no files to join")
        groups, rows, position = [], 0, len(MAGIC)
        for path, metadata, data_end, stat in self.added:
            now = path.stat()
            if (now.st_size, now.st_mtime_ns) != stat:
                raise CannotSplice(f"{path}: changed after it was joined")
            groups += _moved_row_groups(metadata, position - len(MAGIC), len(groups), path)
            rows += _field(metadata, FILE_NUM_ROWS)[2]
            position += data_end - len(MAGIC)
        merged = [list(f) for f in self.added[0][1]]
        for f in merged:
            if f[0] == FILE_NUM_ROWS:
                f[2] = rows
            elif f[0] == FILE_ROW_GROUPS:
                f[2] = (_STRUCT, groups)
        footer = bytearray()
        _write_struct(footer, merged)
        self._out.write(footer)
        self._out.write(struct.pack("<I", len(footer)))
        self._out.write(MAGIC)
        self._out.close()
        return rows

    def discard(self) -> None:
        """Close and remove the file being built."""
        if self._out is not None:
            self._out.close()
        self.out_path.unlink(missing_ok=True)


def splice(sources: list[Path], target_tmp: Path) -> int:
    """Write the rows of ``sources`` (parquet files of one schema), in order, as one parquet file at
    ``target_tmp``, copying their row groups' bytes; return its rows.

    Raises :class:`CannotSplice` before writing anything when the files' schemas (and what the
    footer says of their columns: key-value metadata, column orders) differ, or a file uses what
    the splice does not move; the caller then encodes the rows again.
    """
    if not sources:
        raise CannotSplice("no files to join")
    footers = [read_footer(p) for p in sources]
    joiner = Joiner(target_tmp)
    for path, (metadata, _) in zip(sources, footers, strict=True):  # every file checked before a byte is written
        joiner.check(path, metadata)
    for path, footer in zip(sources, footers, strict=True):
        joiner.add(path, footer)
    return joiner.finish()


def _copy(source, out, length: int) -> None:
    """``length`` bytes from ``source``'s position to the end of ``out``: in the kernel where it can
    (``os.copy_file_range``), else, or for what it left, through a buffer."""
    offset = source.tell()
    out.flush()
    copy_range = getattr(os, "copy_file_range", None)
    try:
        while copy_range is not None and length:
            sent = copy_range(source.fileno(), out.fileno(), length, offset)
            if not sent:
                break
            offset += sent
            length -= sent
    except OSError:  # another file system, or a kernel without it: the rest goes through memory
        pass
    source.seek(offset)
    out.seek(0, os.SEEK_END)
    while length:
        block = source.read(min(length, 1 << 24))
        if not block:
            raise CannotSplice(f"{source.name}: shorter than its footer says")
        out.write(block)
        length -= len(block)
