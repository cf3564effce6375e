"""A local SMTP server (aiosmtpd) that accepts and counts messages, for the delivery benchmark.

``python -m bench.smtpsink [RECORD]`` prints the port it listens on (loopback only), then serves
until its standard input closes. With RECORD, every message it accepts is appended there (one
JSON line: sender, recipients, the message as received), so that the raw-smtplib baseline can
send exactly the messages the engine sent. It runs in its own process so that the server's
work does not share the sender's interpreter.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from aiosmtpd.controller import Controller


class Sink:
    """Counts what it accepts; with ``record``, keeps it and writes it out when it stops, so
    that the server answers the recorded run as fast as the run that is not recorded (the
    baseline's): encoding and writing each message as it came added to every reply's wait."""

    def __init__(self, record: str | None) -> None:
        self.count = 0
        self.record = record
        self.kept: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        if self.record is not None:
            self.kept.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 OK"

    def write(self) -> None:
        if self.record is None:
            return
        with open(self.record, "a", encoding="utf-8") as f:
            for sender, to, content in self.kept:
                text = content.decode("utf-8", "surrogateescape")
                f.write(json.dumps([sender, to, text]) + "\n")


def free_port() -> int:
    # aiosmtpd's Controller cannot take port 0 itself: find a free port first.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    port = free_port()
    sink = Sink(sys.argv[1] if len(sys.argv) > 1 else None)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        controller.stop()
        sink.write()
        print(sink.count, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
