"""File mode's `/filebuffer` registrations: fragments of staged blobs → the NDJSON they carry.

Undocumented (official-sdk-wire §6, SDK 1.9.1): above ~1 MiB buffered, the official SDK uploads
zstd-compressed, AES-CTR-encrypted NDJSON to the stage from `:pipe-info` and then registers it
with `POST …/channels/{ch}/filebuffer?continuationToken=…`, a JSON array of fragments. Each
fragment is `blob[fragment_start_byte_offset : +fragment_length_bytes]`, encrypted with the pipe
key used as is (32 bytes → AES-256) and the counter block `iv_base64`, over one zstd frame. The
fragments of one registration are committed like one `/rows` request spanning their offset tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from streamd.standin.sdk.blob_stage import BlobStageError, Stage
from streamd.standin.streaming.parse_rows import InvalidRowsBody, decode_body, iter_lines

ENCRYPTION_VERSION = "AES-CTR-128.1"
"""What the SDK asks `:pipe-info` for and stamps on every fragment (wire §3 row 3, §6)."""
PIPE_KEY_ID = "1"
MAX_FRAGMENTS = 1000


@dataclass(frozen=True, slots=True)
class Fragment:
    """One registered fragment, the fields the stand-in needs out of the SDK's JSON."""

    file_path: str
    start_byte: int
    length: int
    start_offset: str | None
    end_offset: str | None
    row_count: int
    iv: bytes


def pipe_key(secret: bytes, db: str, schema: str, pipe: str) -> bytes:
    """The 32-byte key of one pipe, stable for the life of the stand-in process."""
    return hmac.new(secret, f"pipe-key:{db}.{schema}.{pipe}".encode(), hashlib.sha256).digest()


def parse_fragments(body: Any) -> list[Fragment]:
    """The fragments of a `/filebuffer` body, or InvalidRowsBody naming the bad field."""
    if not isinstance(body, list) or not body:
        raise InvalidRowsBody(
            "ERR_INVALID_REQUEST", "filebuffer body must be a non-empty JSON array"
        )
    if len(body) > MAX_FRAGMENTS:
        raise InvalidRowsBody("ERR_INVALID_REQUEST", f"more than {MAX_FRAGMENTS} fragments")
    return [_fragment(item, i) for i, item in enumerate(body)]


def _fragment(item: Any, index: int) -> Fragment:
    if not isinstance(item, dict):
        raise InvalidRowsBody("ERR_INVALID_REQUEST", f"fragment {index} is not a JSON object")

    def need(name: str, kind: type) -> Any:
        value = item.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidRowsBody(
                "ERR_INVALID_REQUEST", f"fragment {index}: {name} missing or not {kind.__name__}"
            )
        return value

    version = item.get("encryption_version", ENCRYPTION_VERSION)
    if version != ENCRYPTION_VERSION:
        raise InvalidRowsBody(
            "ERR_INVALID_REQUEST", f"fragment {index}: unsupported encryption_version {version!r}"
        )
    try:
        iv = base64.b64decode(need("iv_base64", str), validate=True)
    except binascii.Error as err:
        raise InvalidRowsBody("ERR_INVALID_REQUEST", f"fragment {index}: iv_base64: {err}") from err
    if len(iv) != 16:
        raise InvalidRowsBody("ERR_INVALID_REQUEST", f"fragment {index}: the IV must be 16 bytes")
    start, end = item.get("fragment_start_offset_token"), item.get("fragment_end_offset_token")
    return Fragment(
        file_path=need("file_path", str),
        start_byte=need("fragment_start_byte_offset", int),
        length=need("fragment_length_bytes", int),
        start_offset=None if start is None else str(start),
        end_offset=None if end is None else str(end),
        row_count=need("fragment_row_count", int),
        iv=iv,
    )


def fragment_loader(stage: Stage, key: bytes, fragments: list[Fragment]) -> Callable[[], bytes]:
    """A worker-thread callable: read, decrypt and decompress every fragment into NDJSON.

    The row count of each fragment is checked against its NDJSON, so a wrong key or a garbled
    blob fails the request instead of committing the wrong rows.
    """

    def load() -> bytes:
        parts: list[bytes] = []
        for i, fragment in enumerate(fragments):
            try:
                encrypted = stage.read_sync(
                    fragment.file_path, fragment.start_byte, fragment.length
                )
            except BlobStageError as err:
                raise InvalidRowsBody("ERR_FILE_NOT_FOUND", f"fragment {i}: {err.message}") from err
            decryptor = Cipher(algorithms.AES(key), modes.CTR(fragment.iv)).decryptor()
            compressed = decryptor.update(encrypted) + decryptor.finalize()
            ndjson = decode_body(compressed, "zstd")
            # fragment_length_uncompressed_bytes is not compared: the SDK (1.9.1) reports somewhat
            # more than the NDJSON it sent, apparently its own size estimate. The row count below
            # is exact.
            rows = sum(1 for _ in iter_lines(ndjson))
            if rows != fragment.row_count:
                raise InvalidRowsBody(
                    "ERR_INVALID_PAYLOAD",
                    f"fragment {i} holds {rows} rows, not fragment_row_count {fragment.row_count}",
                )
            parts.append(ndjson if ndjson.endswith(b"\n") else ndjson + b"\n")
        return b"".join(parts)

    return load


def consume(stage: Stage, fragments: list[Fragment]) -> None:
    """Remove blobs that accepted fragments covered whole (blocking; after the commit queued).

    Not done while loading: an append refused after loading (429, reopened channel) is retried
    or replayed by the SDK and must still find its blob.
    """
    for fragment in fragments:
        try:
            whole = fragment.start_byte == 0 and fragment.length == stage.size_sync(
                fragment.file_path
            )
        except (OSError, BlobStageError):
            continue
        if whole:
            stage.delete_sync(fragment.file_path)
