"""aioquic's sans-IO core alone: two ``QuicConnection``s wired back to back in one process (no
sockets, no event loop, a virtual clock), moving one stream from client to server, with the
CPU time of each side's calls measured apart. This is the cost per byte that no driver can
go below: sending (``send_stream_data`` + ``datagrams_to_send``: framing, packet building,
AEAD and header protection) and receiving (``receive_datagram`` + events: parsing, decrypting,
ACK bookkeeping), per datagram size. ``1e6 / max(send, receive) µs per MiB`` is the MB/s one
core per side could move.

Not part of the test suite: ``python -m benchmarks.quic_core [--size 32MiB]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from benchmarks.quic_raw import configuration

MiB = 1 << 20
SIZES = [1200, 1350, 1452, 9000, 16384]
CHUNK = 256 * 1024  # bytes queued at a time, when the sender's buffer runs low
ADDR = ("127.0.0.1", 4433)


def pair(datagram: int, window: int) -> tuple[QuicConnection, QuicConnection]:
    """A connected client and server (handshake done) at ``datagram`` bytes per packet."""
    ns = argparse.Namespace(datagram=datagram, window=window)
    client_cfg: QuicConfiguration = configuration(ns, is_client=True)
    client = QuicConnection(configuration=client_cfg)
    server = QuicConnection(
        configuration=configuration(ns, is_client=False),
        original_destination_connection_id=client.original_destination_connection_id,
    )
    client.connect(ADDR, now=0.0)
    now = 0.0
    for _ in range(50):
        for data, _ in client.datagrams_to_send(now):
            server.receive_datagram(data, ADDR, now)
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, ADDR, now)
        done = [type(e) for e in iter(client.next_event, None)]
        if events.HandshakeCompleted in done:
            while server.next_event() is not None:
                pass
            return client, server
        now += 0.001
    raise RuntimeError("handshake did not complete")


def transfer(datagram: int, size: int, window: int) -> dict[str, float]:
    """Move ``size`` bytes client -> server; CPU µs per MiB on each side and packets sent."""
    client, server = pair(datagram, window)
    sid = client.get_next_available_stream_id()
    block = bytes(CHUNK)
    queued = received = packets = 0
    send_cpu = recv_cpu = 0.0
    now = 1.0
    while received < size:
        t0 = time.thread_time()
        stream = client._streams.get(sid)
        if queued < size and (stream is None or len(stream.sender._buffer) < CHUNK):
            n = min(CHUNK, size - queued)
            queued += n
            client.send_stream_data(sid, block[:n], end_stream=queued == size)
        out = client.datagrams_to_send(now)
        t1 = time.thread_time()
        for data, _ in out:
            server.receive_datagram(data, ADDR, now)
        while (ev := server.next_event()) is not None:
            if isinstance(ev, events.StreamDataReceived):
                received += len(ev.data)
        acks = server.datagrams_to_send(now)
        t2 = time.thread_time()
        for data, _ in acks:
            client.receive_datagram(data, ADDR, now)
        while client.next_event() is not None:
            pass
        t3 = time.thread_time()
        send_cpu += (t1 - t0) + (t3 - t2)  # the sender also digests ACKs
        recv_cpu += t2 - t1
        packets += len(out)
        if not out and not acks:  # paced or waiting for a timer: jump the virtual clock
            timers = [t for t in (client.get_timer(), server.get_timer()) if t is not None]
            now = max(now + 0.0005, min(timers, default=now))
            for conn in (client, server):
                timer = conn.get_timer()
                if timer is not None and timer <= now:
                    conn.handle_timer(now)
        else:
            now += 0.0001
    mib = size / MiB
    return {
        "send_us_per_mib": send_cpu * 1e6 / mib,
        "recv_us_per_mib": recv_cpu * 1e6 / mib,
        "packets": packets,
        "us_per_packet_send": send_cpu * 1e6 / max(1, packets),
        "us_per_packet_recv": recv_cpu * 1e6 / max(1, packets),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quic_core", description=__doc__)
    p.add_argument("--size", type=int, default=32 * MiB)
    p.add_argument("--window", type=int, default=16 * MiB, help="max_data = max_stream_data")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="datagram sizes")
    a = p.parse_args(argv)
    print(
        "| datagram B | send ms/MiB | receive ms/MiB | µs/packet send | µs/packet receive |"
        " MB/s, one core per side |"
    )
    print("|---|---|---|---|---|---|")
    for d in (int(x) for x in a.sizes.split(",")):
        r = transfer(d, a.size, a.window)
        mbps = 1e6 / max(r["send_us_per_mib"], r["recv_us_per_mib"]) * MiB / 1e6
        print(
            f"| {d} | {r['send_us_per_mib'] / 1000:.1f} | {r['recv_us_per_mib'] / 1000:.1f} | "
            f"{r['us_per_packet_send']:.0f} | {r['us_per_packet_recv']:.0f} | {mbps:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
