"""File mode's fragments: decrypted, decompressed, counted, consumed; bad bodies refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from streamd.standin.sdk.blob_stage import BUCKET, BlobStageError, Stage, Upload
from streamd.standin.sdk.filebuffer import consume, fragment_loader, parse_fragments, pipe_key
from streamd.standin.streaming.parse_rows import InvalidRowsBody

# ---- retry memory -------------------------------------------------------------------------


def encrypted_blob(key: bytes, iv: bytes, ndjson: bytes) -> bytes:
    """What the SDK uploads: one zstd frame of NDJSON under AES-CTR (official-sdk-wire §6)."""
    frame = zstandard.ZstdCompressor().compress(ndjson)
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(frame) + encryptor.finalize()


def fragment_json(path: str, length: int, rows: int, iv: bytes) -> dict[str, object]:
    return {
        "file_path": path,
        "content_type": "application/x-ndjson",
        "file_length_bytes": length,
        "fragment_length_bytes": length,
        "fragment_length_uncompressed_bytes": 12345,  # the SDK's estimate; not compared
        "fragment_start_offset_token": "0",
        "fragment_end_offset_token": str(rows - 1),
        "fragment_row_count": rows,
        "fragment_start_byte_offset": 0,
        "master_key_id": "1",
        "iv_base64": base64.b64encode(iv).decode(),
        "encryption_version": "AES-CTR-128.1",
    }


def test_fragment_is_decrypted_decompressed_counted_and_consumed(tmp_path: Path) -> None:
    stage = Stage(tmp_path / "stage")
    stage.reset_sync()
    key = pipe_key(b"secret", "DB", "S", "P")
    iv = bytes(range(16))
    ndjson = b'{"id":1}\n\n{"id":2}\n{"id":3}\n\n'  # blank lines as the SDK writes them
    blob = encrypted_blob(key, iv, ndjson)
    stage.put_sync(Upload("p/0.ndjson", blob, None, None))
    fragments = parse_fragments([fragment_json(f"{BUCKET}/p/0.ndjson", len(blob), 3, iv)])
    assert fragments[0].end_offset == "2"
    assert fragment_loader(stage, key, fragments)() == ndjson
    with pytest.raises(InvalidRowsBody):  # another pipe's key cannot read it
        fragment_loader(stage, pipe_key(b"secret", "DB", "S", "OTHER"), fragments)()
    consume(stage, fragments)
    with pytest.raises(BlobStageError):
        stage.read_sync(f"{BUCKET}/p/0.ndjson", 0, 1)
    assert list(stage.directory.iterdir()) == []  # empty prefixes go with the blob


def test_fragment_row_count_must_match(tmp_path: Path) -> None:
    stage = Stage(tmp_path / "stage")
    stage.reset_sync()
    key, iv = pipe_key(b"s", "D", "S", "P"), b"\1" * 16
    blob = encrypted_blob(key, iv, b'{"id":1}\n{"id":2}\n')
    stage.put_sync(Upload("f", blob, None, None))
    fragments = parse_fragments([fragment_json(f"{BUCKET}/f", len(blob), 3, iv)])
    with pytest.raises(InvalidRowsBody, match="2 rows"):
        fragment_loader(stage, key, fragments)()


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"file_path": "x"},
        [{"file_path": "x"}],
        [{**fragment_json("x", 1, 1, b"\0" * 16), "iv_base64": "AAAA"}],
        [{**fragment_json("x", 1, 1, b"\0" * 16), "encryption_version": "AES-GCM"}],
    ],
)
def test_bad_filebuffer_bodies_are_refused(body: object) -> None:
    with pytest.raises(InvalidRowsBody):
        parse_fragments(body)


# ---- TLS --------------------------------------------------------------------------------
