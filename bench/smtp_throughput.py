"""SMTP throughput of `concerns serve` against a bare aiosmtpd sink, measured in the same run.

Both servers run in their own process, on loopback, and get the same client and the same message
(only the Message-ID, so that every message is really stored, and the envelope sender, so that a
remembered address parse cannot flatter us, differ). The sink answers 250 at
once; `concerns serve` answers 250 only after the message is committed to a scratch SQLite
database (WAL, synchronous=FULL). Three modes: a new connection per message, one connection
reused, and several clients at once each reusing its connection.

    .venv/bin/python bench/smtp_throughput.py [--messages 1000] [--clients 8] [--rounds 3]

Not part of `make test`: it prints numbers, it does not judge them.
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from figures import paired_ratios
from waiting import OUTBOX_DUE, wait_while

MAILBOX = "escalating-concerns@localhost"
SENDER = "bench.learner@example.nhs.uk"
MESSAGE_BYTES = 2048
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
START_TIMEOUT = 60.0


def message(number: int) -> bytes:
    """The benchmark message: MESSAGE_BYTES long, CRLF lines, unique by its Message-ID."""
    head = (
        f"From: Bench Learner <{SENDER}>\r\nTo: {MAILBOX}\r\n"
        f"Subject: No senior cover on nights\r\n"
        f"Message-ID: <bench-{number:012d}@example.nhs.uk>\r\n\r\n"
    ).encode()
    line = b"FY1s are left unsupervised in the emergency department at night, again.\r\n"
    body = line * ((MESSAGE_BYTES - len(head)) // len(line))
    return head + body + b"x" * (MESSAGE_BYTES - len(head) - len(body) - 2) + b"\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.client", timeout=2) as c:
                c.noop()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered SMTP on port {port}")


@contextmanager
def running(command: list[str], *, port: int, env: dict[str, str], cwd: Path) -> Iterator[None]:
    with (cwd / "server.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=log)
    try:
        wait_for_port(port, process)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the client ---------------------------------------------------------------------------------


def envelope_sender(number: int) -> str:
    """MAIL FROM is never the same twice, as in an escalation mailbox, where each message comes
    from its own learner (only RCPT TO, the mailbox, repeats): an address parsed once and
    remembered must not flatter our rate. The message's own From stays one learner, so that
    processing each round (not counted) stays short."""
    return f"bench.learner.{number}@example.nhs.uk"


def connection(port: int) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, local_hostname="bench.client", timeout=60)


def one_connection_per_message(port: int, numbers: range) -> None:
    for number in numbers:
        with connection(port) as client:
            client.sendmail(envelope_sender(number), [MAILBOX], message(number))


def one_connection_reused(port: int, numbers: range) -> None:
    with connection(port) as client:
        for number in numbers:
            client.sendmail(envelope_sender(number), [MAILBOX], message(number))


def clients_at_once(clients: int) -> Callable[[int, range], None]:
    def run(port: int, numbers: range) -> None:
        share = len(numbers) // clients
        parts = [numbers[i * share : (i + 1) * share] for i in range(clients)]
        with ThreadPoolExecutor(clients) as pool:
            for done in [pool.submit(one_connection_reused, port, part) for part in parts]:
                done.result()

    return run


def rate(mode: Callable[[int, range], None], port: int, numbers: range) -> float:
    """Messages per second for this mode (every message must get its 250)."""
    mode(port, range(numbers.start - 20, numbers.start))  # warm up: imports, pools, caches
    started = time.perf_counter()
    mode(port, numbers)
    return len(numbers) / (time.perf_counter() - started)


def wait_until_processed(database: Path) -> None:
    """Wait (not counted) until `concerns serve` has processed every message stored so far and
    sent what that queued: processing waits while mail arrives (at most a few seconds), so without
    this one round's processing would run during the next rounds, ours or the sinks'."""
    wait_while(
        database,
        "SELECT count(*) FROM inbound_messages WHERE status = 'received' AND attempts = 0",
    )
    wait_while(database, OUTBOX_DUE)


# --- the servers --------------------------------------------------------------------------------


def run_sink(port: int, database: Path | None = None) -> None:
    """The bare baseline: aiosmtpd's Controller with a handler that answers 250 at once.

    With `database`, the reference for durability alone: the same handler first inserts the
    message with the bare sqlite3 module and commits (WAL, synchronous=FULL), on the event loop,
    one message per commit. It is what the commit costs before any of our code runs.
    """
    import sqlite3

    from aiosmtpd.controller import Controller

    store: sqlite3.Connection | None = None
    if database is not None:
        store = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        store.execute("PRAGMA journal_mode=WAL")
        store.execute("PRAGMA synchronous=FULL")
        store.execute("CREATE TABLE mail (id INTEGER PRIMARY KEY, sender TEXT, raw BLOB)")

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            if store is not None:
                store.execute("BEGIN IMMEDIATE")
                store.execute(
                    "INSERT INTO mail (sender, raw) VALUES (?, ?)",
                    (envelope.mail_from, envelope.original_content),
                )
                store.execute("COMMIT")
            return "250 OK"

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    controller = Controller(
        Sink(),
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
        data_size_limit=MAX_MESSAGE_BYTES,
        enable_SMTPUTF8=False,  # as the mailbox
    )
    controller.start()
    stop.wait()
    controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per measurement")
    parser.add_argument("--clients", type=int, default=8, help="clients in the concurrent mode")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per mode (median)")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--durable", type=Path, metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink, args.durable)
        return

    modes: list[tuple[str, Callable[[int, range], None]]] = [
        ("a new connection per message", one_connection_per_message),
        ("one connection, reused", one_connection_reused),
        (f"{args.clients} clients at once, each reusing", clients_at_once(args.clients)),
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONCERNS_")}
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="concerns-bench-") as scratch:
        folder = Path(scratch)
        sink_port, smtp_port, http_port = free_port(), free_port(), free_port()
        durable_port = free_port()
        script = str(Path(__file__).resolve())
        sink = [sys.executable, script, "--sink", str(sink_port)]
        durable = [sys.executable, script, "--sink", str(durable_port)]
        durable += ["--durable", str(folder / "durable" / "sink.db")]
        concerns = [str(Path(sys.executable).parent / "concerns"), "serve"]
        env_serve = env | {
            "CONCERNS_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
            "CONCERNS_SMTP_PORT": str(smtp_port),
            "CONCERNS_HTTP_PORT": str(http_port),
            "CONCERNS_MAILBOX_ADDRESS": MAILBOX,
            "CONCERNS_OUTBOX_DIR": str(folder / "outbox"),
        }
        for part in ("sink", "durable", "serve"):
            (folder / part).mkdir()
        with (
            running(sink, port=sink_port, env=env, cwd=folder / "sink"),
            running(durable, port=durable_port, env=env, cwd=folder / "durable"),
            running(concerns, port=smtp_port, env=env_serve, cwd=folder / "serve"),
        ):
            # Rounds alternate between the two servers so that both see the same machine;
            # every measurement uses fresh Message-IDs, so nothing is a duplicate.
            first = 1_000_000
            for _ in range(args.rounds):
                for name, mode in modes:
                    targets = (("bare", sink_port), ("durable", durable_port), ("ours", smtp_port))
                    for target, port in targets:
                        numbers = range(first, first + args.messages)
                        first += args.messages + 1000
                        rates.setdefault((name, target), []).append(rate(mode, port, numbers))
                        if target == "ours":
                            wait_until_processed(folder / "bench.db")

    print(
        f"SMTP messages per second, median of {args.rounds} rounds of {args.messages} messages "
        f"of {MESSAGE_BYTES} bytes\n(concerns serve commits each message to SQLite, "
        "synchronous=FULL, before its 250)"
    )
    print(
        f"{'mode':<36} {'bare sink':>10} {'concerns serve':>15} {'ours/bare':>10}"
        f" {'durable sink':>13} {'its /bare':>10} {'per round':>16}"
    )
    for name, _ in modes:
        bare = statistics.median(rates[(name, "bare")])
        ours = statistics.median(rates[(name, "ours")])
        durable_rate = statistics.median(rates[(name, "durable")])
        print(
            f"{name:<36} {bare:>10.0f} {ours:>15.0f} {ours / bare:>10.2f}"
            f" {durable_rate:>13.0f} {durable_rate / bare:>10.2f}"
            f" {paired_ratios(rates[(name, 'ours')], rates[(name, 'bare')]):>16}"
        )
    print(
        "durable sink: the bare sink committing each message with sqlite3 before its 250, "
        "the cost of durability alone\n"
        "per round: each of our rounds over the bare round of the same turn (median, lowest to "
        "highest),\nwhich this VM's drift from one minute to the next moves less"
    )


if __name__ == "__main__":
    main()
