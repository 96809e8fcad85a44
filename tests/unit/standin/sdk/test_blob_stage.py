"""The SDK's blob stage: aws-chunked uploads, checksums and ranged reads."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import pytest

from streamd.standin.sdk.blob_stage import BUCKET, BlobStageError, Stage, Upload, decode_aws_chunked

# ---- retry memory -------------------------------------------------------------------------


def aws_chunked(payload: bytes, sizes: tuple[int, ...], crc: bytes | None = None) -> bytes:
    """An aws-chunked body as the SDK's S3 client sends it (chunk extensions, CRC32 trailer)."""
    out = b""
    pos = 0
    for size in sizes:
        chunk = payload[pos : pos + size]
        out += f"{len(chunk):x};chunk-signature=abc\r\n".encode() + chunk + b"\r\n"
        pos += size
    checksum = crc if crc is not None else zlib.crc32(payload).to_bytes(4, "big")
    trailer = base64.b64encode(checksum)
    return out + b"0\r\nx-amz-checksum-crc32:" + trailer + b"\r\n\r\n"


def test_aws_chunked_is_decoded_with_its_trailer() -> None:
    payload = bytes(range(256)) * 40
    body = aws_chunked(payload, (4000, 4000, 2240))
    decoded, trailers = decode_aws_chunked(body)
    assert decoded == payload
    assert "x-amz-checksum-crc32" in trailers


def test_stage_stores_checks_and_serves_ranges(tmp_path: Path) -> None:
    stage = Stage(tmp_path / "stage")
    stage.reset_sync()
    payload = b"0123456789" * 100
    etag = stage.put_sync(
        Upload("a/b/0.ndjson", aws_chunked(payload, (600, 400)), "aws-chunked", "1000")
    )
    assert len(etag) == 32
    assert stage.read_sync(f"{BUCKET}/a/b/0.ndjson", 10, 5) == b"01234"
    with pytest.raises(BlobStageError) as bad_crc:
        stage.put_sync(
            Upload("x", aws_chunked(payload, (1000,), crc=b"\0\0\0\0"), "aws-chunked", None)
        )
    assert bad_crc.value.code == "BadDigest"
    with pytest.raises(BlobStageError):
        stage.put_sync(Upload("x", aws_chunked(payload, (1000,)), "aws-chunked", "999"))
    with pytest.raises(BlobStageError) as missing:
        stage.read_sync(f"{BUCKET}/nope", 0, 1)
    assert missing.value.code == "NoSuchKey"
    with pytest.raises(BlobStageError):
        stage.read_sync(f"{BUCKET}/../outside", 0, 1)


# ---- file-mode fragments -----------------------------------------------------------------
