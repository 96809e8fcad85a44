"""Build the topology from config and run it in one task group; drain on SIGINT/SIGTERM.

Shutdown order is structural: sources stop first, the router closes the lanes, batchers flush, and
writers wait (up to `delivery.drain_timeout_s`) until Snowflake reports every appended row committed.
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd import __version__
from streamd.clock import Clock, SystemClock
from streamd.config.model import Config, sql_dirs
from streamd.daemon import status as run_status
from streamd.daemon.admin import bind as bind_admin
from streamd.daemon.admin import build_app
from streamd.daemon.memory import CollectorPolicy, trim_heap_loop
from streamd.daemon.notify import Notifier, ProgressGate, watchdog_loop
from streamd.daemon.sources import build_sources
from streamd.daemon.status import RunSummary
from streamd.daemon.wiring import Delivery, open_delivery, open_spools
from streamd.errors import ConfigError, FatalError
from streamd.http_server import serve_asgi
from streamd.install import needs_full_install
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.pipeline.batcher import Batcher
from streamd.pipeline.dead_letters import DeadLetters
from streamd.pipeline.lanes import Lane, open_lanes
from streamd.pipeline.router import Router
from streamd.pipeline.stats import PipelineStats
from streamd.reconciler.loop import Reconciler, for_daemon
from streamd.snowflake.auth import KeyPairAuth, StreamingAuth, load_private_key
from streamd.snowflake.http import target_client
from streamd.snowflake.keys import local_key_pair
from streamd.snowflake.sql_api import SqlApiClient
from streamd.snowflake.streaming import StreamingClient
from streamd.sources.base import Source, SourceContext
from streamd.sources.synthetic.sequences import FileSequences
from streamd.spool import LaneSpool

USER_AGENT = f"streamd/{__version__}"


async def _forget_on_exit(path: Path) -> None:
    """Remove the admin URL file when the daemon stops, so `inspect` does not chase a dead port."""
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.Path(path).unlink(missing_ok=True)


class Daemon:
    """The running pipeline: sources → router → lanes → batchers → channel writers."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        sources: list[Source] | None = None,
        tables: list[str] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        """Build from `config`; tests and benchmarks may inject their own sources and tables."""
        self.config = config
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.stats = PipelineStats()
        self.metrics = Metrics(self.stats)
        self._dead_letters = DeadLetters(config.state_dir / "dead_letters", self.stats)
        self.sources = (
            sources if sources is not None else build_sources(config, self._dead_letters.put)
        )
        self.tables = tables if tables is not None else config.target_tables()
        self.lanes: dict[str, Lane] = open_lanes(
            self.tables, config.delivery.lane_capacity, config.delivery.channels_per_table
        )
        self.delivery = Delivery()
        """Every lane's sink and the commit polls serving them; filled as the sinks open."""
        self.sinks = self.delivery.sinks
        """Lane → its sink, whatever the mode: what status, readiness and summary read."""
        self.writers = self.delivery.channels
        """The streaming lanes' channel writers, which the reconciler's channel check reads."""
        self.spools: dict[str, LaneSpool] = {}
        self.batchers: dict[str, Batcher] = {}
        self.reconciler: Reconciler | None = None
        """Set once channels are open, when `reconciler.enabled`."""
        self.started_at = self.clock.wall()
        self._admin_sock: socket.socket | None = None
        self.target_url = ""
        self.admin_url: str | None = None
        self.stopping = False
        self._log = get_logger()
        self._stop = anyio.Event()
        self._abort = anyio.CancelScope()
        self._pipeline_running = False
        self._collector = CollectorPolicy()
        self.ready = anyio.Event()
        """Set once channels are open and the pipeline runs (what READY=1 will mean to systemd)."""

    def stop(self) -> None:
        """Ask the daemon to drain and exit."""
        self._stop.set()

    def status(self) -> dict[str, Any]:
        """Live state for /status and `streamd inspect`."""
        return run_status.status(self)

    def health_reasons(self) -> list[str]:
        """Why /healthz says degraded: the reconciler's critical findings (empty when healthy)."""
        return run_status.health_reasons(self)

    def summary(self) -> RunSummary:
        """Produced / committed / rejected per table, and what still waits."""
        return run_status.summary(self)

    def readiness(self) -> list[str]:
        """Why the daemon is not ready: empty once channels are open and no spool is full."""
        return run_status.readiness(self)

    def refresh_gauges(self) -> None:
        """Set the gauges from live state (called before each /metrics scrape)."""
        run_status.refresh_gauges(self)

    async def run(self, *, duration: float | None = None) -> RunSummary:
        """Run until stopped (signal, `stop()` or `duration`), drain, and return the summary.

        Every exit logs `daemon_stopped` with the per-table counts, a failure (fencing, a grant
        that is missing) included: the operator learns what was delivered before the reason.
        """
        try:
            with self._abort, self._collector.applied():
                await self._run(duration)
        except BaseException as exc:
            self._stopped(error=_reason(exc))
            raise
        if self._abort.cancelled_caught:
            self._log.warning(
                "daemon_aborted", reason="signal before start-up finished or during drain"
            )
        return self._stopped()

    def _stopped(self, error: str | None = None) -> RunSummary:
        summary = self.summary()
        self._log.info(
            "daemon_stopped",
            tables={t: vars(s) for t, s in summary.tables.items()},
            uncommitted=summary.uncommitted,
            retries=summary.retries,
            reopens=summary.reopens,
            **({"error": error} if error else {}),
        )
        return summary

    async def _run(self, duration: float | None) -> None:
        cfg = self.config
        state_dir = cfg.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self._admin_sock = bind_admin(cfg.admin.host, cfg.admin.port) if cfg.admin.enabled else None
        async with anyio.create_task_group() as root:
            root.start_soon(self._watch_signals)
            if cfg.target.kind == "local":
                # Imported here: the stand-in brings DuckDB, Arrow and sqlglot (~60 MB resident)
                # that a daemon aimed at a real account never needs.
                with needs_full_install('target.kind = "local" (the embedded stand-in)'):
                    from streamd.standin.server import StandinSettings
                    from streamd.standin.server import serve as serve_standin

                private_pem, public_pem = local_key_pair(state_dir / "local")
                standin = await root.start(
                    serve_standin,
                    StandinSettings(
                        host=cfg.target.standin.host,
                        port=cfg.target.standin.port,
                        data_dir=state_dir / "standin",
                        sql_dirs=sql_dirs(),
                        commit_delay_s=cfg.target.standin.commit_delay_ms / 1000,
                        public_key_pem=public_pem,
                        task_minute_s=cfg.target.standin.task_minute_s,
                    ),
                )
                self.target_url = standin.url
                passphrase = None
            else:
                if cfg.target.private_key is None:
                    raise ConfigError(
                        'target.private_key: required for kind = "snowflake"; set it to file:/path/rsa_key.p8'
                    )
                private_pem = cfg.target.private_key.get_secret_value().encode()
                pw = cfg.target.private_key_passphrase
                passphrase = pw.get_secret_value().encode() if pw else None
                self.target_url = cfg.target.control_url()
            key = load_private_key(private_pem, passphrase, source="target.private_key")
            try:
                await open_spools(
                    cfg,
                    self.lanes,
                    self.clock,
                    self._dead_letters,
                    root,
                    self.spools,
                    self.batchers,
                )
                await self._deliver(root, key, duration)
            finally:
                with anyio.CancelScope(shield=True):
                    for spool in self.spools.values():
                        await spool.aclose()
                if self._admin_sock is not None and self.admin_url is None:
                    self._admin_sock.close()  # never handed to the server (start-up failed)
            root.cancel_scope.cancel()

    async def _deliver(
        self, root: anyio.abc.TaskGroup, key: RSAPrivateKey, duration: float | None
    ) -> None:
        """Open the channels, serve the admin endpoint, and run the pipeline until it drains."""
        cfg = self.config
        timeout = httpx.Timeout(cfg.delivery.request_timeout_s, connect=10)
        async with target_client(
            ca_file=cfg.target.ca_file,
            proxy=cfg.target.proxy_url(),
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
        ) as http:
            key_auth = KeyPairAuth(
                key, cfg.target.account, cfg.target.user, self.clock, cfg.target.role
            )
            auth = StreamingAuth(http, key_auth, self.target_url, self.clock)
            client = StreamingClient(
                http, auth, compression=cfg.delivery.compression, user_agent=USER_AGENT
            )
            sql = SqlApiClient(http, key_auth, self.target_url, self.clock, user_agent=USER_AGENT)
            if cfg.reconciler.enabled:
                self.reconciler = for_daemon(
                    cfg.reconciler,
                    sql,
                    role=cfg.target.role,
                    clock=self.clock,
                    metrics=self.metrics,
                    tables=self.tables,
                    daemon=self,
                    produced=self.stats.produced,
                )
            with anyio.move_on_after(cfg.delivery.startup_timeout_s) as opening:
                await open_delivery(
                    cfg,
                    self.lanes,
                    self.batchers,
                    client,
                    sql,
                    url=self.target_url,
                    key=key,
                    clock=self.clock,
                    metrics=self.metrics,
                    dead_letters=self._dead_letters,
                    delivery=self.delivery,
                )
            if opening.cancelled_caught:
                last = next((s.last_error for s in self.sinks.values() if s.last_error), None)
                raise FatalError(
                    f"could not open channels at {self.target_url} within "
                    f"{cfg.delivery.startup_timeout_s:g} s (last error: {last}); check target.url, "
                    "the network, or raise delivery.startup_timeout_s"
                )
            if self._admin_sock is not None:
                app = build_app(self, self.metrics)
                self.admin_url = await root.start(serve_asgi, app, self._admin_sock)
                (cfg.state_dir / "admin.url").write_text(self.admin_url)
                root.start_soon(_forget_on_exit, cfg.state_dir / "admin.url")
            self._log.info(
                "daemon_started",
                target=cfg.target.kind,
                url=self.target_url,
                admin=self.admin_url,
                tables=self.tables,
                sources=len(self.sources),
            )
            gate = ProgressGate(lambda: run_status.progress(self))
            root.start_soon(watchdog_loop, self.notifier, gate, self.clock)
            root.start_soon(trim_heap_loop, self.clock)
            await self._run_pipeline(duration)

    async def _run_pipeline(self, duration: float | None) -> None:
        d = self.config.delivery
        sources_scope = anyio.CancelScope()
        with anyio.CancelScope() as drain_scope:
            self._pipeline_running = True
            self.ready.set()
            self.notifier.ready(f"{len(self.writers)} channels open to {self.target_url}")
            async with anyio.create_task_group() as outer:
                outer.start_soon(self.delivery.serve)
                if self.reconciler is not None:
                    outer.start_soon(self.reconciler.run)
                outer.start_soon(self._stop_when_asked, duration, sources_scope, drain_scope)
                # Delivery ends when every writer has seen its lane end and its rows committed.
                async with anyio.create_task_group() as tg:
                    for name, lane in self.lanes.items():
                        tg.start_soon(self.batchers[name].fill, lane.receive)
                        tg.start_soon(self.sinks[name].run)
                    router = Router(
                        self.lanes, self.stats, self.config.tables, self._dead_letters.put
                    )
                    tg.start_soon(self._run_sources, router, sources_scope)
                outer.cancel_scope.cancel()
        if drain_scope.cancelled_caught:
            self._log.error(
                "drain_timed_out",
                drain_timeout_s=d.drain_timeout_s,
                fix="rows not yet committed stay uncommitted; raise delivery.drain_timeout_s",
            )

    async def _stop_when_asked(
        self, duration: float | None, sources: anyio.CancelScope, drain: anyio.CancelScope
    ) -> None:
        with anyio.move_on_after(duration):
            await self._stop.wait()
        self.stopping = True
        drain_timeout = self.config.delivery.drain_timeout_s
        self._log.info("daemon_stopping", drain_timeout_s=drain_timeout)
        self.notifier.stopping(f"draining, up to {drain_timeout:g} s")
        sources.cancel()
        drain.deadline = anyio.current_time() + drain_timeout

    async def _run_sources(self, router: Router, scope: anyio.CancelScope) -> None:
        """Run every source with its own sender; the lanes end once all of them have returned."""
        sequences = FileSequences(self.config.state_dir / "sequences.json")
        try:
            with scope:
                async with anyio.create_task_group() as tg:
                    for source in self.sources:
                        ctx = SourceContext(
                            send=router.sender(),
                            clock=self.clock,
                            sequences=sequences,
                            started=self._collector.freeze,
                        )
                        tg.start_soon(source.run, ctx)
                # Every source reached the end of its input: drain and stop like on SIGTERM.
                self._log.info("sources_finished")
                self.stop()
        finally:
            router.close_lanes()

    async def _watch_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread; embedded runs are stopped with stop()
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self._pipeline_running and not self._stop.is_set():
                    self._log.info("signal_received", signal=name, action="drain")
                    self.stop()
                else:
                    # Still starting (nothing to drain yet) or a second signal during the drain.
                    self._log.warning("signal_received", signal=name, action="abort")
                    self._abort.cancel()


def _reason(exc: BaseException) -> str:
    """One line for why a run ended: the first error inside any task-group wrapping."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
