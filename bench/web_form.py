"""Form submissions per second into `/concerns/new` against a bare FastAPI form endpoint.

Both servers run in their own process on loopback, under uvicorn, with access logs off. The bare
endpoint parses a form and commits one row with the sqlite3 module (WAL, synchronous=FULL) in a
worker thread, then redirects. `concerns serve` does everything a learner's submission does:
CSRF, validation, the durable commit of the submission under its reference (with the form's
one-time key, remembered so that the same form sent again raises nothing), the redirect to the
confirmation, and just after (in the background, as the service does) triage, routing and the
commit of the concern, its events and its outbox messages. Both get the same client (httpx,
keep-alive), sequentially and with several clients at once.

    .venv/bin/python bench/web_form.py [--submissions 300] [--clients 4] [--rounds 3]

Not part of `make test`: it prints numbers, it does not judge them.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from figures import paired_ratios
from starlette.concurrency import run_in_threadpool
from waiting import OUTBOX_DUE, wait_while

START_TIMEOUT = 60.0
DESCRIPTION = (
    "FY1s are left without senior cover on night shifts in the emergency department, and "
    "teaching has been cancelled three weeks running. Submission number {number}."
)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(command: list[str], *, url: str, env: dict[str, str], cwd: Path) -> Iterator[None]:
    with (cwd / "server.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode}; see {cwd}")
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"nothing answered at {url}") from None
                time.sleep(0.1)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the bare endpoint ---------------------------------------------------------------------------


def run_bare(port: int, database: Path) -> None:
    import sqlite3
    import threading

    connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE concern (id INTEGER PRIMARY KEY, description TEXT, form TEXT)")
    lock = threading.Lock()
    app = FastAPI()

    def commit(fields: dict[str, str]) -> None:
        with lock:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "INSERT INTO concern (description, form) VALUES (?, ?)",
                (fields.get("description", ""), repr(sorted(fields.items()))),
            )
            connection.execute("COMMIT")

    @app.post("/submit")
    async def submit(request: Request) -> RedirectResponse:
        form = await request.form()
        fields = {key: str(value) for key, value in form.items()}
        await run_in_threadpool(commit, fields)
        return RedirectResponse("/done", status_code=303)

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


# --- the clients ---------------------------------------------------------------------------------


class Submitter:
    """One learner's browser: a session (cookie and CSRF token) reused for every submission."""

    def __init__(self, base: str, target: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=60)
        self.target = target
        self.fields: dict[str, str] = {}
        if target == "ours":
            page = self.client.get("/concerns/new").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
            organisation = re.search(
                r'<option value="([^"]+)"', page.split('name="organisation"')[1]
            )
            department = re.search(r'<option value="([^"]+)"', page.split('name="department"')[1])
            assert csrf and organisation and department, "the form changed: update the bench"
            self.fields = {
                "csrf_token": csrf.group(1),
                "organisation": organisation.group(1),
                "department": department.group(1),
            }

    def submit(self, number: int) -> float:
        fields = {
            **self.fields,
            "group": "foundation",
            "programme": "Foundation Programme FY1",
            "description": DESCRIPTION.format(number=number),
            "frequency": "often",
            "harm": "patient_at_risk",
            "raised-before": "no",
            "about-supervisor": "no",
            "confidentiality": "named",
            "name": "Bench Learner",
            "email": f"bench.learner.{number}@example.nhs.uk",
            # Each form drawn carries its own one-time key (the bare endpoint ignores it).
            "submission_key": secrets.token_urlsafe(16),
        }
        path = "/concerns/new" if self.target == "ours" else "/submit"
        started = time.perf_counter()
        answer = self.client.post(path, data=fields)
        elapsed = time.perf_counter() - started
        if answer.status_code != 303:
            raise SystemExit(f"{self.target}: {answer.status_code} {answer.text[:500]}")
        return elapsed


def measure(base: str, target: str, numbers: range, clients: int) -> tuple[float, list[float]]:
    submitters = [Submitter(base, target) for _ in range(clients)]
    for warm in range(5):
        submitters[0].submit(numbers.start - 100 - warm)
    share = len(numbers) // clients
    parts = [numbers[i * share : (i + 1) * share] for i in range(clients)]

    def run(index: int) -> list[float]:
        return [submitters[index].submit(number) for number in parts[index]]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [value for part in pool.map(run, range(clients)) for value in part]
    rate = len(latencies) / (time.perf_counter() - started)
    for submitter in submitters:
        submitter.client.close()
    return rate, latencies


def wait_until_raised(database: Path) -> float:
    """Seconds until every stored submission has been raised into a concern (triage, routing,
    the audit trail and the outbox): the service's work after it answers the learner. Then, not
    counted, until the outbox has sent every email those concerns queued, so that no round
    (ours or the bare one) runs while an earlier round's work is still going on."""
    started = time.perf_counter()
    wait_while(database, "SELECT count(*) FROM received_submissions")
    raised = time.perf_counter() - started
    wait_while(database, OUTBOX_DUE)
    return raised


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=300, help="per measurement")
    parser.add_argument("--clients", type=int, default=4, help="clients in the concurrent mode")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per mode (median)")
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--database", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        run_bare(args.bare, args.database)
        return

    env = {key: value for key, value in os.environ.items() if not key.startswith("CONCERNS_")}
    modes: list[tuple[str, int]] = [
        ("one client", 1),
        (f"{args.clients} clients at once", args.clients),
    ]
    results: dict[tuple[str, str], list[tuple[float, list[float], float]]] = {}
    with tempfile.TemporaryDirectory(prefix="concerns-bench-web-") as scratch:
        folder = Path(scratch)
        (folder / "bare").mkdir()
        (folder / "serve").mkdir()
        bare_port, http_port, smtp_port = free_port(), free_port(), free_port()
        database = folder / "serve" / "bench.db"
        bare = [sys.executable, str(Path(__file__).resolve()), "--bare", str(bare_port)]
        bare += ["--database", str(folder / "bare" / "bare.db")]
        serve = [str(Path(sys.executable).parent / "concerns"), "serve"]
        env_serve = env | {
            "CONCERNS_DATABASE_URL": f"sqlite:///{database}",
            "CONCERNS_HTTP_PORT": str(http_port),
            "CONCERNS_SMTP_PORT": str(smtp_port),
            "CONCERNS_OUTBOX_DIR": str(folder / "serve" / "outbox"),
            # One client address sends everything here: lift the per-address limit.
            "CONCERNS_SUBMISSION_RATE_LIMIT": "1000000/minute",
        }
        targets: list[tuple[str, str]] = [
            ("bare", f"http://127.0.0.1:{bare_port}"),
            ("ours", f"http://127.0.0.1:{http_port}"),
        ]
        with (
            running(bare, url=targets[0][1] + "/", env=env, cwd=folder / "bare"),
            running(serve, url=targets[1][1] + "/healthz", env=env_serve, cwd=folder / "serve"),
        ):
            first = 1_000_000
            for _ in range(args.rounds):
                for name, clients in modes:
                    for target, base in targets:
                        numbers = range(first, first + args.submissions)
                        first += args.submissions + 1000
                        rate, latencies = measure(base, target, numbers, clients)
                        # Ours raises each submission just after answering: wait for that too,
                        # so no round runs while another's work is still going on, and count
                        # it in the rate of concerns raised.
                        drain = wait_until_raised(database) if target == "ours" else 0.0
                        raised = len(latencies) / (len(latencies) / rate + drain)
                        results.setdefault((name, target), []).append((rate, latencies, raised))

    print(
        f"Form submissions per second, median of {args.rounds} rounds of {args.submissions}\n"
        "(bare: FastAPI form endpoint committing one row; ours: /concerns/new end to end;\n"
        " raised /s: ours counting the time until every concern was raised, after the answers)"
    )
    print(
        f"{'mode':<20} {'bare /s':>8} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'ours /s':>8} {'p50 ms':>7} {'p95 ms':>7} {'ours/bare':>10} "
        f"{'raised /s':>10} {'raised/bare':>12} {'per round':>16}"
    )
    for name, _ in modes:
        row: list[str] = [f"{name:<20}"]
        rates: dict[str, float] = {}
        for target in ("bare", "ours"):
            runs = results[(name, target)]
            rates[target] = statistics.median(rate for rate, _, _ in runs)
            latencies = [value for _, values, _ in runs for value in values]
            row.append(
                f"{rates[target]:>8.0f} {percentile(latencies, 0.5) * 1000:>7.1f} "
                f"{percentile(latencies, 0.95) * 1000:>7.1f}"
            )
        raised = statistics.median(value for _, _, value in results[(name, "ours")])
        row.append(f"{rates['ours'] / rates['bare']:>10.2f}")
        row.append(f"{raised:>10.0f} {raised / rates['bare']:>12.2f}")
        per_round = paired_ratios(
            [rate for rate, _, _ in results[(name, "ours")]],
            [rate for rate, _, _ in results[(name, "bare")]],
        )
        row.append(f"{per_round:>16}")
        print(" ".join(row))
    print(
        "per round: each of our rounds over the bare round just before it (median, lowest to\n"
        "highest), which this VM's drift from one minute to the next moves less"
    )


if __name__ == "__main__":
    main()
