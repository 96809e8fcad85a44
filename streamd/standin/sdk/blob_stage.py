"""The internal stage the official SDK uploads file-mode blobs to: an S3 PutObject look-alike.

`:pipe-info` points the SDK's S3 client at the stand-in itself (`storage_endpoint`, official-sdk-wire
§4.1), which then sends path-style `PUT /<bucket>/<key>?x-id=PutObject` with an `aws-chunked`
body and a CRC32 trailer (§6). The stand-in keeps each blob as a file under `<data_dir>/stage/`
until a `/filebuffer` registration has consumed it (`filebuffer.py`). SigV4 signatures are not
checked: the credentials are the stand-in's own fakes, handed out by `:pipe-info`.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

BUCKET = "streamd-standin-stage"
"""The one bucket `:pipe-info` hands out (a valid S3 bucket name)."""
MAX_OBJECT_BYTES = 256 * 1024 * 1024
"""Cap on one uploaded blob; the SDK's file-mode blobs are a few MB (target ~4 MB compressed)."""


class BlobStageError(Exception):
    """An upload or a blob reference the stage cannot take; `code` is an S3 error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Upload:
    """One PutObject request as received: raw body and the headers that say how to read it."""

    key: str
    body: bytes
    content_encoding: str | None
    decoded_length: str | None
    """`x-amz-decoded-content-length`: the payload size inside an aws-chunked body."""


def decode_aws_chunked(body: bytes) -> tuple[bytes, dict[str, str]]:
    """Payload and trailers of an `aws-chunked` body (`<hex>[;ext]\\r\\n<data>\\r\\n…0\\r\\n<trailers>\\r\\n`)."""
    payload = bytearray()
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise BlobStageError(
                400, "IncompleteBody", "aws-chunked body ends inside a chunk header"
            )
        size_text = body[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BlobStageError(
                400, "InvalidChunkSizeError", f"bad aws-chunked size {size_text[:16]!r}"
            ) from None
        pos = end + 2
        if size == 0:
            break
        if pos + size + 2 > len(body) or body[pos + size : pos + size + 2] != b"\r\n":
            raise BlobStageError(400, "IncompleteBody", "aws-chunked chunk is cut short")
        payload += body[pos : pos + size]
        pos += size + 2
    trailers: dict[str, str] = {}
    for line in body[pos:].split(b"\r\n"):
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            trailers[name.strip().lower()] = value.strip()
    return bytes(payload), trailers


def object_payload(upload: Upload) -> bytes:
    """The object's bytes: aws-chunked undone, its length and CRC32 trailer checked."""
    encodings = [e.strip().lower() for e in (upload.content_encoding or "").split(",")]
    if "aws-chunked" not in encodings:
        return upload.body
    payload, trailers = decode_aws_chunked(upload.body)
    if upload.decoded_length is not None and upload.decoded_length != str(len(payload)):
        raise BlobStageError(
            400,
            "IncompleteBody",
            f"x-amz-decoded-content-length {upload.decoded_length} != {len(payload)} bytes sent",
        )
    crc = trailers.get("x-amz-checksum-crc32")
    if crc is not None:
        mine = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode("ascii")
        if crc != mine:
            raise BlobStageError(
                400, "BadDigest", "x-amz-checksum-crc32 does not match the payload"
            )
    return payload


class Stage:
    """Blobs on disk under one directory, keyed by `<bucket>/<key>`; blocking (use a thread)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def reset_sync(self) -> None:
        """Forget blobs of an earlier process: their pipe keys died with it."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    def put_sync(self, upload: Upload) -> str:
        """Store one object; returns its ETag (hex MD5 of the payload, as S3 does)."""
        payload = object_payload(upload)
        path = self._path(f"{BUCKET}/{upload.key}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(payload)
        tmp.replace(path)
        return hashlib.md5(payload, usedforsecurity=False).hexdigest()

    def read_sync(self, file_path: str, start: int, length: int) -> bytes:
        """`length` bytes at `start` of a stored blob named as `/filebuffer` names it."""
        path = self._path(file_path)
        try:
            with path.open("rb") as blob:
                blob.seek(start)
                data = blob.read(length)
        except FileNotFoundError:
            raise BlobStageError(
                404, "NoSuchKey", f"no uploaded file {file_path!r} on the stage"
            ) from None
        if len(data) != length:
            raise BlobStageError(
                400, "InvalidRange", f"{file_path!r} has no {length} bytes at offset {start}"
            )
        return data

    def size_sync(self, file_path: str) -> int:
        """Size in bytes of a stored blob."""
        return self._path(file_path).stat().st_size

    def delete_sync(self, file_path: str) -> None:
        """Remove a consumed blob (missing is fine: a retry may have removed it) and the
        per-client prefix directories it leaves empty."""
        path = self._path(file_path)
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == self.directory or not parent.is_relative_to(self.directory):
                break
            try:
                parent.rmdir()
            except OSError:  # not empty: other blobs still wait there
                break

    def _path(self, name: str) -> Path:
        parts = PurePosixPath(name.lstrip("/")).parts
        if not parts or parts[0] != BUCKET or any(p in ("..", ".") for p in parts):
            raise BlobStageError(
                400, "InvalidObjectName", f"{name!r} is not an object in bucket {BUCKET}"
            )
        return self.directory.joinpath(*parts)
