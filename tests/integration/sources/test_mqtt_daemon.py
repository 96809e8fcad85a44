"""MQTT through the real daemon: JSON and Sparkplug B messages published to a real Mosquitto land
in stand-in tables; bad payloads go to the dead-letter files and lose nothing valid."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from streamd.config.model import Config
from streamd.daemon.run import Daemon
from streamd.snowflake.keys import generate_key_pair
from streamd.sources.mqtt.source import MqttSource
from streamd.sources.mqtt.sparkplug import DATATYPE_CODES
from streamd.standin.server import Standin
from streamd.testing import standin_query
from tests.conftest import MANUFACTURING_SQL, StandinFactory
from tests.helpers import eventually, spb

from .conftest import Broker

pytestmark = pytest.mark.slow
TELEMETRY = "IOT_DEMO.RAW.TELEMETRY"
SPARKPLUG = "IOT_DEMO.RAW.SPARKPLUG"
KEY, _ = generate_key_pair()
DDL = f"""
CREATE DATABASE IF NOT EXISTS IOT_DEMO;
CREATE SCHEMA IF NOT EXISTS IOT_DEMO.RAW;
CREATE TABLE IF NOT EXISTS {TELEMETRY} (
    EVENT_ID VARCHAR(64), PLANT VARCHAR(32), LINE VARCHAR(32), TEMP FLOAT, TOPIC VARCHAR(256)
);
CREATE TABLE IF NOT EXISTS {SPARKPLUG} (
    GROUP_ID VARCHAR(64), EDGE_NODE_ID VARCHAR(64), DEVICE_ID VARCHAR(64),
    MESSAGE_TYPE VARCHAR(16), METRIC VARCHAR(256), ALIAS NUMBER(20, 0), VALUE VARIANT,
    DATATYPE VARCHAR(32), TIMESTAMP NUMBER(20, 0), SEQ NUMBER(5, 0), STATUS VARCHAR(16)
);
"""


DOUBLE, INT32, INT64 = (DATATYPE_CODES[t] for t in ("Double", "Int32", "Int64"))
GOOD = [
    ("plants/p1/l2/telemetry", orjson.dumps({"EVENT_ID": "j1", "TEMP": 20.5})),
    (
        "plants/p2/l1/telemetry",
        orjson.dumps([{"EVENT_ID": "j2", "TEMP": 1.0}, {"EVENT_ID": "j3", "TEMP": 2.0}]),
    ),
    (
        "spBv1.0/G/NBIRTH/E",
        spb(0, [{"name": "T", "alias": 1, "datatype": DOUBLE, "double_value": 20.0}]),
    ),
    (
        "spBv1.0/G/DBIRTH/E/D1",
        spb(1, [{"name": "Speed", "alias": 2, "datatype": INT32, "int_value": (-5) & 0xFFFFFFFF}]),
    ),
    ("spBv1.0/G/NDATA/E", spb(2, [{"alias": 1, "double_value": 21.5}])),
    ("spBv1.0/G/DDATA/E/D1", spb(3, [{"alias": 2, "int_value": (-7) & 0xFFFFFFFF}])),
    ("spBv1.0/G/DDEATH/E/D1", spb(4, [])),
    ("spBv1.0/G/NDEATH/E", spb(None, [{"name": "bdSeq", "datatype": INT64, "long_value": 3}])),
]
BAD = [
    ("plants/p1/l9/telemetry", b"{not json", TELEMETRY, "invalid_json"),
    ("plants/p1/l9/telemetry", b"[1, 2]", TELEMETRY, "invalid_json"),
    ("spBv1.0/G/NDATA/E", b"\xff\xff\xff\xff", SPARKPLUG, "invalid_sparkplug"),
    ("spBv1.0/G/NOPE/E", spb(5, []), SPARKPLUG, "invalid_sparkplug"),
]


def _config(standin: Standin, broker: Broker, state: Path) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": standin.url, "private_key": KEY.decode()},
            "delivery": {"linger_ms": 20, "status_poll_ms": 50},
            "admin": {"enabled": False},
            "log": {"level": "warning"},
            "sources": [
                {
                    "kind": "mqtt",
                    "port": broker.port,
                    "client_id": "streamd-daemon-test",
                    "subscriptions": [
                        {
                            "topic": "plants/+/+/telemetry",
                            "table": TELEMETRY,
                            "columns": {"+1": "PLANT", "+2": "LINE"},
                            "topic_column": "TOPIC",
                        },
                        {"topic": "spBv1.0/#", "table": SPARKPLUG, "format": "sparkplug_b"},
                    ],
                }
            ],
        }
    )


async def test_json_and_sparkplug_messages_land_in_tables_and_bad_ones_in_dead_letters(
    make_standin: StandinFactory, broker: Broker, tmp_path: Path
) -> None:
    sql = tmp_path / "sql_iot"
    sql.mkdir()
    (sql / "01_iot.sql").write_text(DDL)
    standin = make_standin(sql_dirs=(MANUFACTURING_SQL, sql))
    state = tmp_path / "state"
    daemon = Daemon(_config(standin, broker, state))
    source = daemon.sources[0]
    assert isinstance(source, MqttSource)
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(30):
            await daemon.ready.wait()
            await eventually(lambda: source.connects >= 1)  # counted, not signalled
        # Bad messages in between good ones: they block nothing and lose nothing.
        await broker.publish(*GOOD[:3], *[b[:2] for b in BAD], *GOOD[3:])
        await eventually(
            lambda: (
                daemon.summary().tables[TELEMETRY].committed >= 3
                and daemon.summary().tables[SPARKPLUG].committed >= 8
            ),
            within=60,
        )
        daemon.stop()

    telemetry = standin_query(
        standin.url, f"select EVENT_ID, PLANT, LINE, TEMP, TOPIC from {TELEMETRY} order by EVENT_ID"
    )
    assert telemetry == [
        ["j1", "p1", "l2", "20.5", "plants/p1/l2/telemetry"],
        ["j2", "p2", "l1", "1.0", "plants/p2/l1/telemetry"],
        ["j3", "p2", "l1", "2.0", "plants/p2/l1/telemetry"],
    ]
    sparkplug = standin_query(
        standin.url,
        "select MESSAGE_TYPE, DEVICE_ID, METRIC, ALIAS, VALUE, DATATYPE, SEQ, STATUS "
        f"from {SPARKPLUG} order by SEQ nulls last, STATUS nulls first",
    )
    assert sparkplug == [
        ["NBIRTH", None, "T", "1", "20.0", "Double", "0", None],
        ["NBIRTH", None, None, None, None, None, "0", "ONLINE"],
        ["DBIRTH", "D1", "Speed", "2", "-5", "Int32", "1", None],
        ["DBIRTH", "D1", None, None, None, None, "1", "ONLINE"],
        ["NDATA", None, "T", "1", "21.5", "Double", "2", None],
        ["DDATA", "D1", "Speed", "2", "-7", "Int32", "3", None],
        ["DDEATH", "D1", None, None, None, None, "4", "OFFLINE"],
        ["NDEATH", None, None, None, "3", None, None, "OFFLINE"],
    ]
    dead = []
    for table in (TELEMETRY, SPARKPLUG):
        for line in (state / "dead_letters" / f"{table}.ndjson").read_bytes().splitlines():
            dead.append(orjson.loads(line))
    assert sorted((d["position"], d["table"], d["rule"]) for d in dead) == sorted(
        (f"mqtt:{topic}", table, rule) for topic, _, table, rule in BAD
    )
    assert {d["row"]["_raw"] for d in dead if d["table"] == TELEMETRY} == {"{not json", "[1, 2]"}
    summary = daemon.summary()
    assert (summary.tables[TELEMETRY].committed, summary.tables[SPARKPLUG].committed) == (3, 8)
