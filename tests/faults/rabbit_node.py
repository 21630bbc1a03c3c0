"""Private RabbitMQ nodes for the fault-injection suite.

The suite never touches the shared broker. It boots nodes of its own, on free ports of
127.0.0.1, each with its own data and log directories, an Erlang cookie of its own (``HOME``
holds it) and a private ``epmd`` (``ERL_EPMD_PORT``), so nothing of the system's RabbitMQ —
node, cookie, epmd, config — is used or disturbed.

Debian's ``rabbitmq-server`` and ``rabbitmqctl`` commands are a wrapper that switches to the
``rabbitmq`` user and its shared cookie; the nodes here are started with the real scripts that
the wrapper's links point to (found at run time, see :func:`find_sbin`).

:class:`RabbitCluster` owns the shared pieces (the temporary directory, the cookie, epmd) and
one or more :class:`RabbitNode`; closing it stops every node and epmd and removes the
directories, whatever state the nodes were left in. Node control has a blocking form (for
fixtures) and an ``async`` one (for tests: a fault injected from a test must not freeze the
event loop the clients under test run on).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: Overrides where the real RabbitMQ scripts are (the directory holding rabbitmq-server).
SBIN_ENV = "EVENTRABBIT_RABBITMQ_SBIN"
#: Where Debian's package keeps the real scripts, one directory per installed version.
DEBIAN_SBIN_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"
#: Ports a free-port pick must not return: the shared broker's and the CLI's default range.
RESERVED_PORTS = frozenset({4369, 5671, 5672, 15672, 25672, *range(35672, 35683)})

BOOT_TIMEOUT = 90.0
CTL_TIMEOUT = 60.0
STOP_TIMEOUT = 45.0

_CTL_ERL_ARGS = "-kernel inet_dist_use_interface {127,0,0,1}"


class HarnessError(RuntimeError):
    """The private RabbitMQ could not be found, started or controlled."""


def _is_sbin(directory: Path) -> bool:
    return all((directory / name).is_file() for name in ("rabbitmq-server", "rabbitmqctl"))


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name.rpartition("-")[2]
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def find_sbin() -> Path:
    """The directory of the real ``rabbitmq-server`` and ``rabbitmqctl`` scripts.

    Tried in turn: ``$EVENTRABBIT_RABBITMQ_SBIN``; ``rabbitmq-server`` on ``PATH`` followed to
    its real file (for Debian's wrapper: to the wrapper's directory, whose ``rabbitmq-server``
    links to the real script); Debian's versioned directories, newest first.

    :raises HarnessError: no RabbitMQ installation was found.
    """
    override = os.environ.get(SBIN_ENV)
    if override:
        if _is_sbin(Path(override)):
            return Path(override)
        raise HarnessError(f"${SBIN_ENV} does not name a directory holding rabbitmq-server")
    found = shutil.which("rabbitmq-server") or shutil.which(
        "rabbitmq-server", path="/usr/sbin:/usr/local/sbin:/sbin"
    )
    if found:
        target = Path(found).resolve()
        if target.name == "rabbitmq-script-wrapper":
            # The wrapper's directory holds links named after each command, pointing at
            # the real scripts.
            sibling = target.parent / "rabbitmq-server"
            if sibling.exists():
                target = sibling.resolve()
        if target.name == "rabbitmq-server" and _is_sbin(target.parent):
            return target.parent
    for candidate in sorted(glob.glob(DEBIAN_SBIN_GLOB), key=_version_key, reverse=True):
        if _is_sbin(Path(candidate)):
            return Path(candidate)
    raise HarnessError(
        "no RabbitMQ server scripts found: install rabbitmq-server (the fault-injection suite "
        f"starts private nodes with it) or point ${SBIN_ENV} at the directory holding the "
        "real rabbitmq-server and rabbitmqctl scripts"
    )


def find_erlang_tool(name: str) -> Path:
    """An executable of the Erlang the nodes run on (``epmd``, ``erl``)."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(glob.glob(f"/usr/lib/erlang/erts-*/bin/{name}"), reverse=True)
    if candidates:
        return Path(candidates[0])
    raise HarnessError(f"{name} (Erlang) not found; RabbitMQ needs Erlang installed")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (and none the shared broker uses)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _amqp_ready(port: int) -> bool:
    """Whether an AMQP server answers on ``port``: it sends Connection.Start to our header."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            head = sock.recv(7)
    except OSError:
        return False
    return len(head) == 7 and head[0] == 1  # a method frame: connection.start


async def _amqp_ready_async(port: int) -> bool:
    try:
        async with asyncio.timeout(2.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"AMQP\x00\x00\x09\x01")
                head = await reader.readexactly(7)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    return head[0] == 1


class RabbitNode:
    """One private RabbitMQ node: boot, control (``rabbitmqctl``), pause, stop.

    Its data directory survives :meth:`stop`, so :meth:`start` again is a broker restart that
    keeps durable queues and persistent messages.
    """

    def __init__(self, cluster: RabbitCluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.name = f"{cluster.prefix}-{index}"
        self.node = f"{self.name}@localhost"
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.root = cluster.root / self.name
        for sub in ("mnesia", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = info\n" + "".join(f"{line}\n" for line in cluster.config)
        )
        if cluster.advanced is not None:
            (self.root / "advanced.config").write_text(cluster.advanced)
        self.pid_file = self.root / f"{self.name}.pid"
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    def __repr__(self) -> str:
        return f"<RabbitNode {self.node} amqp={self.amqp_port}>"

    def url(self, **query: object) -> str:
        """The AMQP URL of this node (guest may log in: ``loopback_users = none``)."""
        suffix = "&".join(f"{key}={value}" for key, value in query.items())
        base = f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"
        return f"{base}?{suffix}" if suffix else base

    @property
    def env(self) -> dict[str, str]:
        """The environment of this node's scripts: private everything, 127.0.0.1 only."""
        env = self.cluster.env()
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.root / "advanced.config"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=_CTL_ERL_ARGS,
        )
        return env

    # -- life cycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the node's OS process runs (the app inside may be stopped)."""
        return self._process is not None and self._process.poll() is None

    def launch(self) -> None:
        """Start the node's process (``rabbitmq-server`` in the foreground, kept as a child)."""
        if self.running:
            raise HarnessError(f"{self.node} already runs")
        self.pid_file.unlink(missing_ok=True)
        log = (self.root / "log" / "console.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [str(self.cluster.sbin / "rabbitmq-server")],
                env=self.env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killable as a whole
            )
        finally:
            log.close()

    def _boot_failed(self, why: str) -> HarnessError:
        tail = self.log_tail()
        return HarnessError(f"{self.node} did not boot: {why}\n--- its log ---\n{tail}")

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Block until the node answers AMQP; raise (with its log) if it died or took too long."""
        deadline = time.monotonic() + timeout
        while not _amqp_ready(self.amqp_port):
            if not self.running:
                raise self._boot_failed("its process exited")
            if time.monotonic() > deadline:
                raise self._boot_failed(f"no AMQP on port {self.amqp_port} within {timeout} s")
            time.sleep(0.1)

    async def wait_ready_async(self, timeout: float = BOOT_TIMEOUT) -> None:  # noqa: ASYNC109
        """:meth:`wait_ready` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await _amqp_ready_async(self.amqp_port):
            if not self.running:
                raise self._boot_failed("its process exited")
            if loop.time() > deadline:
                raise self._boot_failed(f"no AMQP on port {self.amqp_port} within {timeout} s")
            await asyncio.sleep(0.1)

    def ensure_up(self) -> None:
        """Bring the node back to running and answering, whatever a failed test left."""
        if self._paused:
            self.resume()
        if not self.running:
            self.launch()
        elif not _amqp_ready(self.amqp_port):
            with contextlib.suppress(HarnessError):
                self.ctl("start_app")
        self.wait_ready()

    async def start_async(self) -> None:
        """Boot the node again after :meth:`stop_async` (same data: a broker restart)."""
        self.launch()
        await self.wait_ready_async()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's logs, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*.log")):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"[{path.name}]\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    @property
    def beam_pid(self) -> int:
        """The OS pid of the Erlang VM (the script that started it is its parent)."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            raise HarnessError(f"{self.node} wrote no pid file") from None

    def pause(self) -> None:
        """Freeze the VM (SIGSTOP): sockets stay open, nothing answers — a silent dead peer."""
        os.kill(self.beam_pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        os.kill(self.beam_pid, signal.SIGCONT)
        self._paused = False

    def terminate(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process for good, gracefully if it can be (SIGTERM), else SIGKILL."""
        process = self._process
        if process is None:
            return
        if self._paused:
            with contextlib.suppress(OSError, HarnessError):
                self.resume()
        beam = None
        with contextlib.suppress(HarnessError):
            beam = self.beam_pid
        if process.poll() is None:
            process.terminate()  # the script forwards it to the VM: a clean shutdown
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the group is the script's own
                process.wait(10)
        # A VM that outlived its script is still in the script's process group: only then
        # is that pid ours to kill.
        with contextlib.suppress(ProcessLookupError, PermissionError, TypeError):
            if beam is not None and os.getpgid(beam) == process.pid:
                os.kill(beam, signal.SIGKILL)
        self._process = None

    # -- rabbitmqctl -------------------------------------------------------------------------

    def _ctl_argv(self, args: Sequence[str]) -> list[str]:
        return [str(self.cluster.sbin / "rabbitmqctl"), "-n", self.node, *args]

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl -n <node> <args>`` (blocking); its output, or HarnessError."""
        argv = self._ctl_argv(args)
        try:
            done = subprocess.run(
                argv, env=self.env, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise HarnessError(f"rabbitmqctl {' '.join(args)} took over {timeout} s") from None
        output = (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode:
            raise HarnessError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {output}")
        return output

    async def actl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:  # noqa: ASYNC109
        """:meth:`ctl` without blocking the event loop."""
        process = await asyncio.create_subprocess_exec(
            *self._ctl_argv(args),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                out, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.communicate()
            raise HarnessError(f"rabbitmqctl {' '.join(args)} took over {timeout} s") from None
        output = out.decode(errors="replace")
        if process.returncode:
            raise HarnessError(
                f"rabbitmqctl {' '.join(args)} failed ({process.returncode}): {output}"
            )
        return output

    async def close_all_connections(self) -> None:
        """Broker side: close every client connection of this node."""
        await self.actl("close_all_connections", "fault injection")

    async def stop_app(self) -> None:
        """Stop the RabbitMQ application (the VM keeps running); clients lose their links."""
        await self.actl("stop_app")

    async def start_app(self) -> None:
        """Start the application again and wait until AMQP answers."""
        await self.actl("start_app")
        await self.wait_ready_async()

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` under its consumers (the broker cancels them)."""
        await self.actl("delete_queue", queue)

    async def stop_async(self) -> None:
        """Stop the node (``rabbitmqctl stop``): the VM exits, its data directory stays."""
        await self.actl("stop")
        process = self._process
        if process is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_TIMEOUT
            while process.poll() is None:
                if loop.time() > deadline:
                    raise HarnessError(f"{self.node} still runs {STOP_TIMEOUT} s after stop")
                await asyncio.sleep(0.1)
            self._process = None

    def join_cluster(self, seed: RabbitNode) -> None:
        """Make this node a member of ``seed``'s cluster (blocking)."""
        self.ctl("stop_app")
        self.ctl("join_cluster", seed.node)
        self.ctl("start_app")
        self.wait_ready()


class RabbitCluster:
    """Private RabbitMQ nodes sharing a cookie and an epmd; one node is a plain broker.

    Use as a context manager, or call :meth:`close` (it is safe after any failure).
    """

    def __init__(
        self,
        size: int = 1,
        *,
        label: str = "faults",
        config: Sequence[str] = (),
        advanced: str | None = None,
        plugins: Sequence[str] = (),
    ) -> None:
        """:param config: more ``rabbitmq.conf`` lines for every node (``consumer_timeout =
            2000``).
        :param advanced: the ``advanced.config`` of every node, an Erlang term
            (``[{rabbit, [{channel_tick_interval, 100}]}].``): for settings ``rabbitmq.conf``
            has no key for.
        :param plugins: plugins every node boots with (``rabbitmq_consistent_hash_exchange``),
            written to the cluster's own ``enabled_plugins`` file; none by default.
        """
        if size < 1:
            raise ValueError("a cluster has one node or more")
        self.config = tuple(config)
        self.advanced = advanced
        self.sbin = find_sbin()
        self.epmd = find_erlang_tool("epmd")
        self.prefix = f"evr-{label}-{secrets.token_hex(3)}"
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.home = self.root / "home"
        self.home.mkdir()
        cookie = self.home / ".erlang.cookie"
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)))
        cookie.chmod(0o600)
        # Only what was asked for: management and all others stay off.
        (self.root / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        (self.root / "rabbitmq-env.conf").write_text("")  # instead of the system's env file
        self.epmd_port = free_port()
        self.ctl_port = free_port()
        self._epmd: subprocess.Popen[bytes] | None = None
        self.nodes: list[RabbitNode] = []
        self._size = size

    def env(self) -> dict[str, str]:
        """What every script of this cluster runs with (node-specific parts added by nodes)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_")) and key not in ("CONF_ENV_FILE",)
        }
        env.update(
            HOME=str(self.home),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_CTL_ERL_ARGS=_CTL_ERL_ARGS,
            RABBITMQ_CTL_DIST_PORT_MIN=str(self.ctl_port),
            RABBITMQ_CTL_DIST_PORT_MAX=str(self.ctl_port + 10),
            LC_ALL="C.UTF-8",
        )
        return env

    def start(self) -> RabbitCluster:
        """Start epmd and boot the nodes (side by side); join them to the first one."""
        atexit.register(self.close)  # a last resort if the run is torn down abruptly
        try:
            self._start_epmd()
            self.nodes = [RabbitNode(self, index) for index in range(1, self._size + 1)]
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                node.wait_ready()
            for node in self.nodes[1:]:
                node.join_cluster(self.nodes[0])
        except BaseException:
            self.close()
            raise
        return self

    def _start_epmd(self) -> None:
        self._epmd = subprocess.Popen(
            [str(self.epmd), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not _port_open(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"private epmd did not start on port {self.epmd_port}")
            time.sleep(0.05)

    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def urls(self) -> list[str]:
        """Every node's AMQP URL, in node order."""
        return [node.url() for node in self.nodes]

    def close(self) -> None:
        """Stop every node and epmd, remove the directories. Never raises."""
        atexit.unregister(self.close)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.terminate()
        if self._epmd is not None:
            with contextlib.suppress(Exception):
                self._epmd.terminate()
                try:
                    self._epmd.wait(5)
                except subprocess.TimeoutExpired:
                    self._epmd.kill()
                    self._epmd.wait(5)
            self._epmd = None
        shutil.rmtree(self.root, ignore_errors=True)


# Reads one Erlang expression per line from stdin, evaluates it, prints {ok, Value} or
# {error, Class, Reason} on one line.
_SHELL_LOOP = (
    'Loop = fun L() -> case io:get_line("") of eof -> halt(0); Line -> '
    "Reply = try {ok, Toks, _} = erl_scan:string(Line), "
    "{ok, Exprs} = erl_parse:parse_exprs(Toks), "
    "{value, V, _} = erl_eval:exprs(Exprs, []), {ok, V} "
    "catch C:R -> {error, C, R} end, "
    'io:format("~w~n", [Reply]), L() end end, Loop().'
)


class ErlangShell:
    """A hidden Erlang node of the cluster that runs expressions on its nodes in milliseconds.

    ``rabbitmqctl`` boots an Erlang VM per call (about a second here); a fault repeated a
    hundred times goes through this instead: one VM, one RPC per fault.
    """

    def __init__(self, cluster: RabbitCluster) -> None:
        self.cluster = cluster
        self.erl = find_erlang_tool("erl")
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ErlangShell:
        name = f"{self.cluster.prefix}-shell-{secrets.token_hex(2)}@localhost"
        self._process = await asyncio.create_subprocess_exec(
            str(self.erl),
            "-sname",
            name,
            "-hidden",
            "-noshell",
            *_CTL_ERL_ARGS.split(),
            "-eval",
            _SHELL_LOOP,
            env=self.cluster.env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await self.eval("ok.")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def eval(self, expression: str, timeout: float = 15.0) -> str:  # noqa: ASYNC109
        """Evaluate one Erlang expression (ending in ``.``); its value, printed with ``~w``."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise HarnessError("the Erlang shell is not running")
        process.stdin.write(expression.encode() + b"\n")
        await process.stdin.drain()
        try:
            async with asyncio.timeout(timeout):
                line = (await process.stdout.readline()).decode(errors="replace").strip()
        except TimeoutError:
            raise HarnessError(f"no answer to {expression!r} within {timeout} s") from None
        if not line.startswith("{ok,"):
            raise HarnessError(f"{expression!r} failed: {line or 'the shell exited'}")
        return line[len("{ok,") : -1]

    async def close_all_connections(self, node: RabbitNode) -> None:
        """Broker side, like ``rabbitmqctl close_all_connections``: close every client link."""
        result = await self.eval(
            f"rpc:call('{node.node}', rabbit_networking, close_all_connections, "
            '["fault injection"]).'
        )
        if result != "ok":
            raise HarnessError(f"close_all_connections on {node.node} returned {result}")
