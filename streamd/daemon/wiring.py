"""Opening what delivery runs on: each lane's spool and batcher, then each lane's sink.

A lane is delivered by a streaming channel writer (with one commit tracker per pipe) or, for
files-mode tables, by a file writer; which one is decided here, once, and the daemon sees only
`Sink`s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio
import anyio.abc
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.clock import Clock
from streamd.config.model import Config
from streamd.install import needs_full_install
from streamd.metrics import Metrics
from streamd.pipeline.batcher import Batcher, BatchPolicy
from streamd.pipeline.dead_letters import DeadLetters
from streamd.pipeline.lanes import Lane
from streamd.rows import ChannelKey, split_table
from streamd.sinks.base import Sink
from streamd.sinks.streaming.channel_writer import ChannelWriter
from streamd.sinks.streaming.commit_tracker import CommitTracker
from streamd.sinks.streaming.pacing import ChannelPacer
from streamd.snowflake.sql_api import SqlApiClient
from streamd.snowflake.streaming import StreamingClient
from streamd.spool import LaneSpool


@dataclass
class Delivery:
    """Every lane's sink, and the commit polls that serve the streaming ones."""

    sinks: dict[str, Sink] = field(default_factory=dict)
    """Lane name → its sink, whatever the mode; filled as each opens (a slow open shows)."""
    channels: dict[str, ChannelWriter] = field(default_factory=dict)
    """The streaming lanes' writers: their channel status is what the reconciler checks."""
    trackers: dict[tuple[str, str, str], CommitTracker] = field(default_factory=dict)
    """One commit tracker per (database, schema, pipe)."""

    async def serve(self) -> None:
        """Poll commits for every pipe until cancelled (returns at once when there is none)."""
        async with anyio.create_task_group() as tg:
            for tracker in self.trackers.values():
                tg.start_soon(tracker.run)


async def open_spools(
    config: Config,
    lanes: dict[str, Lane],
    clock: Clock,
    dead_letters: DeadLetters,
    tg: anyio.abc.TaskGroup,
    spools: dict[str, LaneSpool],
    batchers: dict[str, Batcher],
) -> None:
    """Open (and recover) every lane's spool into `spools`, with its batcher into `batchers`."""
    spool_config = config.spool
    if config.spool_total_max_bytes is not None:
        # A total budget is shared evenly: each lane may use its share, never more than max_bytes.
        share = config.spool_total_max_bytes // max(1, len(lanes))
        spool_config = spool_config.model_copy(
            update={"max_bytes": min(spool_config.max_bytes, share)}
        )
    d = config.delivery
    policy = BatchPolicy(d.max_rows, d.max_bytes, d.linger_ms / 1000)
    f = config.files
    file_policy = BatchPolicy(f.max_file_rows, f.max_file_bytes, f.max_file_age_s)
    files_tables = set(config.files_tables())
    for name, lane in lanes.items():
        spool = await LaneSpool.open(
            config.state_dir / "spool" / name, spool_config, clock, lane=name
        )
        await tg.start(spool.run)
        spools[name] = spool
        # Files-mode lanes cut files (rows, bytes, age) where streaming lanes cut appends.
        lane_policy = file_policy if lane.table in files_tables else policy
        batchers[name] = Batcher(
            lane.table, spool, lane_policy, clock, on_oversize=dead_letters.oversize
        )


async def open_delivery(
    config: Config,
    lanes: Mapping[str, Lane],
    batchers: Mapping[str, Batcher],
    client: StreamingClient,
    sql: SqlApiClient,
    *,
    url: str,
    key: RSAPrivateKey,
    clock: Clock,
    metrics: Metrics,
    dead_letters: DeadLetters,
    delivery: Delivery,
) -> None:
    """Open a sink per lane into `delivery`: channel writers, then files-mode writers."""
    await open_channels(config, lanes, batchers, client, clock, metrics, delivery)
    if not config.files_tables():
        return
    # Imported only with files-mode tables: snowflake-ingest pulls in the Snowflake connector
    # and boto3 (~45 MB resident).
    with needs_full_install('tables with mode = "files"'):
        from streamd.sinks.files.setup import open_files_mode
    await open_files_mode(
        config,
        lanes,
        batchers,
        sql,
        url=url,
        key=key,
        clock=clock,
        metrics=metrics,
        dead_letters=dead_letters,
        writers=delivery.sinks,
    )


async def open_channels(
    config: Config,
    lanes: Mapping[str, Lane],
    batchers: Mapping[str, Batcher],
    client: StreamingClient,
    clock: Clock,
    metrics: Metrics,
    delivery: Delivery,
) -> None:
    """A channel writer per streaming lane (registered before it opens: a slow open shows)."""
    d = config.delivery
    files_tables = set(config.files_tables())
    for lane in lanes.values():
        if lane.table in files_tables:
            continue  # delivered as files (`sinks/files/setup.py`)
        database, schema, name = split_table(lane.table)
        pipe = f"{name}-STREAMING"
        channel = f"{d.channel_prefix}_{name}"
        if d.channels_per_table > 1:
            channel += f"_{lane.shard}"
        tracker = delivery.trackers.get((database, schema, pipe))
        if tracker is None:
            tracker = CommitTracker(
                client,
                database,
                schema,
                pipe,
                clock=clock,
                metrics=metrics,
                min_interval_s=d.status_poll_ms / 1000,
                max_interval_s=d.status_poll_max_ms / 1000,
                idle_interval_s=d.idle_status_interval_s,
            )
            delivery.trackers[(database, schema, pipe)] = tracker
        writer = ChannelWriter(
            client,
            ChannelKey(database, schema, pipe, channel),
            lane.table,
            batchers[lane.name],
            clock=clock,
            metrics=metrics,
            tracker=tracker,
            max_inflight_batches=d.max_inflight_batches,
            pacer=ChannelPacer(clock, d.pace_requests_per_s, d.pace_bytes_per_s),
        )
        delivery.channels[lane.name] = writer
        delivery.sinks[lane.name] = writer
        await writer.open()
