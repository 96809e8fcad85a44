"""The S3 external-stage uploader against a real S3 endpoint (moto's server on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from streamd.errors import FatalError
from streamd.snowflake.stage_upload import S3Stage


@pytest.fixture
def s3() -> Iterator[Any]:
    """A boto3 S3 client for a moto server on 127.0.0.1, port chosen by the OS."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
    finally:
        server.stop()


async def test_files_land_under_the_stage_prefix_and_overwrite(s3: Any) -> None:
    s3.create_bucket(Bucket="landing")
    stage = S3Stage(s3, "landing", "streamd/raw/")
    await stage.upload("SENSOR/ab12/000001-000010.ndjson.gz", b"first")
    await stage.upload("SENSOR/ab12/000001-000010.ndjson.gz", b"again")
    listed = s3.list_objects_v2(Bucket="landing")["Contents"]
    assert [o["Key"] for o in listed] == ["streamd/raw/SENSOR/ab12/000001-000010.ndjson.gz"]
    body = s3.get_object(Bucket="landing", Key=listed[0]["Key"])["Body"].read()
    assert body == b"again"
    assert stage.location == "s3://landing/streamd/raw"


async def test_a_missing_bucket_is_an_operator_error(s3: Any) -> None:
    with pytest.raises(FatalError, match="create bucket nowhere"):
        await S3Stage(s3, "nowhere").upload("a.ndjson.gz", b"x")
