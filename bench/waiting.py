"""Waiting, uncounted, for `concerns serve` to finish a round's work in its scratch database, so
that no measurement (ours or a baseline's) shares the machine with an earlier round's work."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

# Messages to contacts outside working hours wait for the morning: those are not waited for.
OUTBOX_DUE = (
    "SELECT count(*) FROM outbox WHERE status = 'pending' AND send_after <= datetime('now')"
)


def wait_while(database: Path, count_query: str) -> None:
    """Poll the database until the query counts nothing."""
    connection = sqlite3.connect(database, timeout=60)
    try:
        while connection.execute(count_query).fetchone()[0]:
            time.sleep(0.02)
    finally:
        connection.close()
