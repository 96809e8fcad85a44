"""Pure pieces behind the official SDK's endpoints: retry memory, aws-chunked, fragments, TLS files."""

from __future__ import annotations

import base64
import datetime
import zlib
from pathlib import Path

import pytest
import zstandard
from cryptography import x509
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from streamd.standin.http.tls import ensure_self_signed
from streamd.standin.sdk.blob_stage import BUCKET, BlobStageError, Stage, Upload, decode_aws_chunked
from streamd.standin.sdk.filebuffer import consume, fragment_loader, parse_fragments, pipe_key
from streamd.standin.streaming.parse_rows import InvalidRowsBody
from streamd.standin.streaming.replay import Attempt, RecentRequests

# ---- retry memory -------------------------------------------------------------------------


def test_retry_with_same_id_and_token_and_higher_count_gets_the_same_answer() -> None:
    recent = RecentRequests()
    recent.remember(Attempt("req-1", 0), "tok-0", "tok-1")
    assert recent.replay(Attempt("req-1", 1), "tok-0") == "tok-1"
    assert recent.replay(Attempt("req-1", 3), "tok-0") == "tok-1"


@pytest.mark.parametrize(
    ("attempt", "token"),
    [
        (Attempt("req-1", 0), "tok-0"),  # same retryCount: not a retry
        (Attempt("req-1", 1), "tok-9"),  # another continuation token
        (Attempt("req-2", 1), "tok-0"),  # another request
        (Attempt(None, 1), "tok-0"),  # no requestId at all (our own client's style)
    ],
)
def test_non_retries_are_not_replayed(attempt: Attempt, token: str) -> None:
    recent = RecentRequests()
    recent.remember(Attempt("req-1", 0), "tok-0", "tok-1")
    assert recent.replay(attempt, token) is None


def test_retry_memory_is_bounded_and_forgets_the_oldest() -> None:
    recent = RecentRequests(capacity=3)
    for i in range(5):
        recent.remember(Attempt(f"req-{i}", 0), f"tok-{i}", f"tok-{i + 1}")
    assert recent.replay(Attempt("req-0", 1), "tok-0") is None
    assert recent.replay(Attempt("req-1", 1), "tok-1") is None
    assert recent.replay(Attempt("req-4", 1), "tok-4") == "tok-5"


# ---- aws-chunked and the stage ------------------------------------------------------------


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


def test_self_signed_ca_and_cert_cover_loopback_and_are_reused(tmp_path: Path) -> None:
    files = ensure_self_signed(tmp_path / "tls")
    assert files.ca is not None
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    leaf = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(
        days=300
    )
    assert files.key.stat().st_mode & 0o077 == 0  # the key is private
    first = files.ca.read_bytes()
    assert ensure_self_signed(tmp_path / "tls").ca == files.ca
    assert files.ca.read_bytes() == first  # reused: a client's SSL_CERT_FILE stays valid
    ensure_self_signed(tmp_path / "tls", ("127.0.0.2",))
    assert files.ca.read_bytes() != first  # a new name needs a new certificate
