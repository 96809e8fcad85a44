"""MQTT source: subscribes to topic filters and turns JSON or Sparkplug B messages into rows.

Delivery (QoS 1, precisely):

- Subscriptions are QoS 1 on a persistent session (`clean_session = false`, a fixed
  `client_id`), and automatic PUBACKs are switched off (paho's manual ack). A message's PUBACK is
  sent only once every row it produced has been acked by the pipeline (durable in the spool, or
  handled by the pipeline's own policy), and PUBACKs go out in the order the PUBLISHes arrived
  (MQTT 3.1.1 §4.6), so a slow row holds back the acks behind it, never the other way round.
- A message that produced no rows (NCMD, a bad payload already written to the dead letters) is
  acked in its turn. Bad payloads are never lost and never block.
- If the connection drops, acks that arrive later for its messages are not sent (their message ids
  belong to the old connection); the broker redelivers those messages on reconnect (DUP set,
  same packet id). This process remembers the messages it had handed to the pipeline and not
  acked, recognises their redeliveries (`streamd.sources.mqtt.acks`) and acks them once the first
  copy's rows are durable without producing the rows again: a reconnect adds no duplicates.
- What a restart of the daemon (or a crash) cannot tell: a message whose rows reached the spool
  but whose PUBACK had not gone out when the process stopped is delivered again to the new
  process and spooled again. Across restarts the source is at-least-once; the window is the time
  between a row's spool ack and its PUBACK (milliseconds; on shutdown the source stays connected
  up to `drain_timeout_s` so rows handed over become durable and acked first; a crash has no
  such grace). Rows carry no id of their own that would let the table drop such copies: give
  payloads an id (Sparkplug B rows: GROUP_ID, EDGE_NODE_ID, DEVICE_ID, SEQ and TIMESTAMP together
  identify a message) and deduplicate downstream where a restart duplicate matters.
- The broker's in-flight window (mosquitto `max_inflight_messages`, default 20) bounds unacked
  messages, so a full pipeline makes the broker hold messages rather than this process.

Reconnects back off exponentially (`reconnect_min_s` doubling up to `reconnect_max_s`, reset after
a successful connect) and subscribe again every time. Built on aiomqtt (asyncio-only; anyio runs
on asyncio, so the daemon must use the asyncio backend — it does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import anyio
import orjson
from anyio.abc import TaskStatus
from pydantic import Field, SecretStr, field_validator

from streamd.config.base import FrozenModel
from streamd.config.secrets import resolve_secret
from streamd.logs import get_logger
from streamd.rows import Envelope, Row
from streamd.sources.base import SourceContext
from streamd.sources.mqtt.acks import AckQueue, Pending
from streamd.sources.rejects import DeadLetter, raw_row

if TYPE_CHECKING:
    import aiomqtt

    from streamd.sources.mqtt.sparkplug import SparkplugDecoder

_QUALIFIED = r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$"


class MqttSubscription(FrozenModel):
    """One topic filter, the table its messages go to, and how to read them."""

    topic: str = Field(min_length=1)
    """Topic filter with + and # wildcards; `$share/<group>/<filter>` spreads messages over all
    daemons subscribed with the same group (scale-out)."""
    table: str = Field(pattern=_QUALIFIED)
    """Fully qualified target table, DB.SCHEMA.TABLE."""
    format: Literal["json", "sparkplug_b"] = "json"
    """`json`: a payload is an object (one row) or an array of objects (one row each).
    `sparkplug_b`: rows as described in `streamd.sources.mqtt.sparkplug`."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Topic segments → columns: "0", "1", … is a segment index (0-based) of the topic; "+1",
    "+2", … the segment matched by the first, second, … `+` of the filter; "#" the rest matched
    by `#`. E.g. { "+1" = "SITE", "+2" = "LINE" } for `plants/+/+/telemetry`. The topic's value
    wins over a payload key of the same name (logged once per column as
    `mqtt_topic_column_overrides_payload`): the topic is what the broker routed on."""
    topic_column: str | None = None
    """If set, the full topic is stored in this column (it wins over a payload key of that name)."""

    @property
    def filter(self) -> str:
        """The topic filter without a `$share/<group>/` prefix."""
        if self.topic.startswith("$share/"):
            return self.topic.split("/", 2)[2]
        return self.topic

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("$share/") and (len(parts) < 3 or not parts[1]):
            raise ValueError(f"shared subscription {value!r} must be $share/<group>/<filter>")
        levels = parts[2:] if value.startswith("$share/") else parts
        for i, level in enumerate(levels):
            if ("+" in level and level != "+") or ("#" in level and level != "#"):
                raise ValueError(f"topic filter {value!r}: a wildcard must fill a whole level")
            if level == "#" and i != len(levels) - 1:
                raise ValueError(f"topic filter {value!r}: # must be the last level")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not (key == "#" or key.isdigit() or (key[:1] == "+" and key[1:].isdigit())):
                raise ValueError(f'column key {key!r} must be "N", "+N" or "#"')
        return value


class MqttSourceConfig(FrozenModel):
    """An MQTT broker to subscribe to (QoS 1, acked only once rows are durable)."""

    kind: Literal["mqtt"] = "mqtt"
    """Selects this source type."""
    name: str = Field(default="mqtt", min_length=1)
    """Unique name of this source (appears in logs; prefixes shard keys)."""
    host: str = "127.0.0.1"
    """Broker host name or address."""
    port: int = Field(default=1883, ge=1, le=65535)
    """Broker TCP port."""
    client_id: str = Field(min_length=1, max_length=128)
    """MQTT client id; must be stable and unique per daemon: the broker keeps the session (and
    the unacked messages) under it across reconnects and restarts."""
    username: str | None = None
    """User name, if the broker requires one."""
    password: SecretStr | None = None
    """Password: `env:NAME`, `file:/path` or the literal."""
    subscriptions: list[MqttSubscription] = Field(min_length=1)
    """Topic filters, tried in order: a message goes to the first whose filter matches."""
    keepalive_s: int = Field(default=30, ge=5)
    """MQTT keep-alive interval."""
    reconnect_min_s: float = Field(default=0.5, gt=0)
    """First pause before reconnecting; doubles per failed attempt."""
    reconnect_max_s: float = Field(default=30, gt=0)
    """Longest pause between reconnect attempts."""
    rebirth_interval_s: float = Field(default=30, gt=0)
    """Sparkplug B: least time between two rebirth requests to one edge node."""
    drain_timeout_s: float = Field(default=5, ge=0)
    """On shutdown, how long to stay connected while rows already handed to the pipeline become
    durable, so their PUBACKs go out (unacked messages are sent again after a restart)."""

    @field_validator("password", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        return resolve_secret(value, key="sources.password") if isinstance(value, str) else value

    def tables(self) -> list[str]:
        """The fully qualified tables (`DB.SCHEMA.TABLE`) this source writes."""
        return sorted({s.table for s in self.subscriptions})


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches `topic_filter` (without `$share/`), per MQTT wildcard rules."""
    f, t = topic_filter.split("/"), topic.split("/")
    if t[0].startswith("$") and f[0] in ("+", "#"):
        return False  # wildcards never match $SYS-like topics at the first level
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def topic_columns(sub: MqttSubscription, topic: str) -> Row:
    """The columns `sub.columns` takes from `topic`'s segments (None where a segment is absent)."""
    f, t = sub.filter.split("/"), topic.split("/")
    plus = [i for i, level in enumerate(f) if level == "+"]
    row: Row = {}
    for key, column in sub.columns.items():
        if key == "#":
            row[column] = "/".join(t[len(f) - 1 :]) if f[-1] == "#" else None
            continue
        index = plus[int(key[1:]) - 1] if key[0] == "+" and 0 < int(key[1:]) <= len(plus) else None
        if key[0] != "+":
            index = int(key)
        row[column] = t[index] if index is not None and index < len(t) else None
    if sub.topic_column:
        row[sub.topic_column] = topic
    return row


def json_rows(payload: bytes) -> list[Row]:
    """Rows of a JSON payload: an object, or an array of objects; ValueError otherwise."""
    value = orjson.loads(payload)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value
    raise ValueError("payload must be a JSON object or a non-empty array of objects")


class MqttSource:
    """Subscribes until cancelled, reconnecting with backoff; `run` reports once subscribed."""

    def __init__(self, config: MqttSourceConfig, dead_letter: DeadLetter | None = None) -> None:
        self.config = config
        self.name = config.name
        self._dead_letter = dead_letter
        # The MQTT client and protobuf load with the source, not with the config: a broken or
        # missing MQTT dependency must not take down `streamd --help`, `sql` or the stand-in.
        from streamd.sources.mqtt.sparkplug import SparkplugDecoder

        self._sparkplug: SparkplugDecoder = SparkplugDecoder(
            rebirth_interval_s=config.rebirth_interval_s
        )
        self._log = get_logger(source=config.name)
        self.connects = 0
        """Successful connections so far (tests and logs)."""
        self.duplicates = 0
        """Redelivered messages recognised after reconnects (not turned into rows again)."""
        self._carried: list[Pending] = []
        self._warned: set[tuple[str, str]] = (
            set()
        )  # (subscription, column) overrides logged  # unacked messages of the last connection

    async def run(
        self, ctx: SourceContext, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Consume until cancelled (or until nobody receives any more)."""
        import aiomqtt

        c = self.config
        delay = c.reconnect_min_s
        while True:
            before = self.connects
            try:
                await self._session(ctx, task_status)
            except aiomqtt.MqttError as exc:
                if self.connects > before:
                    delay = c.reconnect_min_s
                self._log.warning("mqtt_disconnected", error=str(exc), retry_in_s=delay)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._log.info("mqtt_receiver_closed")
                return
            await anyio.sleep(delay)
            delay = min(c.reconnect_max_s, delay * 2)

    async def _session(self, ctx: SourceContext, task_status: TaskStatus[None]) -> None:
        import aiomqtt

        c = self.config
        client = aiomqtt.Client(
            c.host,
            c.port,
            identifier=c.client_id,
            username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            clean_session=False,
            keepalive=c.keepalive_s,
            timeout=10,
        )
        # aiomqtt has no manual-ack option of its own; paho (which it wraps) does. Switched on
        # before connecting, so even messages the session holds for us wait for our ack.
        paho = client._client
        paho.manual_ack_set(True)
        acks = AckQueue(paho.ack, self._carried)
        # aiomqtt's Message drops paho's DUP flag, which tells a redelivery from a new message.
        dups: set[int] = set()
        on_message = paho.on_message
        assert on_message is not None  # aiomqtt's own handler, set by its constructor

        def keep_dup(c: Any, userdata: Any, message: Any) -> None:
            if message.dup:
                dups.add(message.mid)
            else:
                dups.discard(message.mid)
            on_message(c, userdata, message)

        paho.on_message = keep_dup
        try:
            async with client:
                self.connects += 1
                for sub in c.subscriptions:
                    await client.subscribe(sub.topic, qos=1)
                self._log.info("mqtt_subscribed", host=c.host, port=c.port, connects=self.connects)
                if self.connects == 1:
                    task_status.started()
                try:
                    async for message in client.messages:
                        dup = message.mid in dups
                        dups.discard(message.mid)
                        await self._handle(ctx, client, acks, message, dup)
                except anyio.get_cancelled_exc_class():
                    # Stopping: the pipeline still spools what it was handed; PUBACK those
                    # messages before disconnecting, or the broker sends them again after a
                    # restart (and their rows would be spooled twice).
                    with anyio.CancelScope(shield=True), anyio.move_on_after(c.drain_timeout_s):
                        await acks.settled()
                    raise
        finally:
            # Message ids of a dead connection must not be acked on a new one; its unacked
            # messages are remembered so their redeliveries do not become rows twice.
            self._carried = acks.close()

    def _overridden(self, sub: MqttSubscription, row: Row, extra: Row) -> None:
        for column in extra.keys() & row.keys():
            if row[column] != extra[column] and (sub.topic, column) not in self._warned:
                self._warned.add((sub.topic, column))
                self._log.warning(
                    "mqtt_topic_column_overrides_payload",
                    subscription=sub.topic,
                    column=column,
                    payload_value=row[column],
                    topic_value=extra[column],
                )

    async def _handle(
        self,
        ctx: SourceContext,
        client: aiomqtt.Client,
        acks: AckQueue,
        message: aiomqtt.Message,
        dup: bool,
    ) -> None:
        topic = message.topic.value
        payload = _payload_bytes(message.payload)
        if acks.redelivered(message.mid, message.qos, topic, payload, dup):
            self.duplicates += 1
            self._log.info("mqtt_redelivery_skipped", topic=topic, mid=message.mid)
            return
        sub = next((s for s in self.config.subscriptions if topic_matches(s.filter, topic)), None)
        if sub is None:
            self._log.warning("mqtt_unexpected_topic", topic=topic)
            acks.add(message.mid, message.qos, 0, topic, payload)
            return
        try:
            if sub.format == "json":
                rows = json_rows(payload)
                key = f"{self.name}:{topic}"
            else:
                decoded = self._sparkplug.decode(topic, payload)
                rows = decoded.rows
                key = f"{self.name}:" + "/".join(topic.split("/")[1:4:2])  # group/edge node
                if decoded.rebirth is not None:
                    self._log.info("sparkplug_rebirth_requested", topic=decoded.rebirth[0])
                    await client.publish(decoded.rebirth[0], decoded.rebirth[1], qos=0)
        except ValueError as exc:  # orjson.JSONDecodeError and SparkplugError are ValueErrors
            rule = "invalid_sparkplug" if sub.format == "sparkplug_b" else "invalid_json"
            await self._reject(sub.table, topic, payload, rule, str(exc))
            acks.add(message.mid, message.qos, 0, topic, payload)
            return
        extra = topic_columns(sub, topic)
        entry = acks.add(message.mid, message.qos, len(rows), topic, payload)

        def ack(_seq: int | None) -> None:
            acks.row_done(entry)

        try:
            for row in rows:
                if not extra.keys().isdisjoint(row):
                    self._overridden(sub, row, extra)
                await ctx.send.send(Envelope(sub.table, row | extra, key, ack))
        except anyio.get_cancelled_exc_class():
            entry.abandoned = True  # not all its rows reached the pipeline: never acked
            raise

    async def _reject(self, table: str, topic: str, payload: bytes, rule: str, detail: str) -> None:
        if self._dead_letter is None:
            self._log.error("mqtt_bad_payload", table=table, topic=topic, rule=rule, detail=detail)
            return
        # Retried until written: the message is acked only after its dead letter is stored.
        delay = 0.1
        while True:
            try:
                await self._dead_letter(
                    table,
                    raw_row(payload),
                    rule=rule,
                    detail=detail,
                    position=f"{self.name}:{topic}",
                )
                return
            except Exception:
                self._log.exception("mqtt_dead_letter_failed", table=table, rule=rule)
                await anyio.sleep(delay)
                delay = min(5.0, delay * 2)


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
