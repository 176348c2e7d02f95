"""The floor of one Noise-framed stream in Python on this machine: what a minimal pipeline
reaches when it does nothing but the unavoidable work, for comparison with the cipher ceiling
and with the real stack (``python -m benchmarks``).

A sender process encrypts full 64 KiB Noise frames (ChaCha20-Poly1305, 65,519-byte
plaintexts, the 2-byte length prefix) into one reused buffer and writes them to a loopback TCP
socket with blocking ``sendall``; the receiver reads into one reused buffer with ``recv_into``
and decrypts every frame. No event loop, no muxer, no multistream, no copies beyond the
kernel's and the cipher's. The same run measures the one-core encrypt ceiling, like the
benchmark does.

Not part of the test suite. Usage::

    python -m benchmarks.floor [--size BYTES] [--reps N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import time

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

PLAIN = 65519  # the largest plaintext of one Noise frame
FRAME = 2 + PLAIN + 16  # length prefix, ciphertext, tag
BATCH = 4  # frames per write (the stack writes 256 KiB..1 MiB per send too)
_NONCE = struct.Struct("<4xQ")
_LENGTH = struct.Struct(">H")
_KEY = bytes(32)


def _send(sock: socket.socket, total: int) -> None:
    cipher = ChaCha20Poly1305(_KEY)
    plain = bytes(PLAIN)
    out = bytearray(FRAME * BATCH)
    view = memoryview(out)
    nonce = sent = 0
    while sent < total:
        for index in range(BATCH):
            at = index * FRAME
            _LENGTH.pack_into(out, at, PLAIN + 16)
            cipher.encrypt_into(_NONCE.pack(nonce), plain, None, view[at + 2 : at + FRAME])
            nonce += 1
        sock.sendall(view)
        sent += PLAIN * BATCH
    sock.shutdown(socket.SHUT_WR)


def _receive(sock: socket.socket) -> tuple[int, float]:
    cipher = ChaCha20Poly1305(_KEY)
    buffer = bytearray(256 * 1024)
    view = memoryview(buffer)
    held = nonce = received = 0
    started = time.perf_counter()
    while True:
        count = sock.recv_into(view[held:])
        if not count:
            break
        held += count
        at = 0
        while held - at >= 2:
            (length,) = _LENGTH.unpack_from(buffer, at)
            if held - at < 2 + length:
                break
            plain = cipher.decrypt(_NONCE.pack(nonce), view[at + 2 : at + 2 + length], None)
            nonce += 1
            received += len(plain)
            at += 2 + length
        if at:
            buffer[: held - at] = view[at:held]
            held -= at
    return received, time.perf_counter() - started


def _one_transfer(size: int) -> float:
    """MB/s of one sender process to this process over 127.0.0.1."""
    listener = socket.create_server(("127.0.0.1", 0))
    pid = os.fork()
    if pid == 0:  # the sender
        try:
            with socket.create_connection(listener.getsockname()) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _send(sock, size)
        finally:
            os._exit(0)
    conn, _ = listener.accept()
    with conn:
        received, seconds = _receive(conn)
    os.waitpid(pid, 0)
    listener.close()
    return received / seconds / 1e6


def _ceiling(seconds: float = 1.0) -> float:
    """MB/s of ChaCha20-Poly1305 encrypting full frames on one core."""
    cipher = ChaCha20Poly1305(_KEY)
    plain = bytes(PLAIN)
    out = bytearray(PLAIN + 16)
    count = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        cipher.encrypt_into(_NONCE.pack(count), plain, None, out)
        count += 1
    return count * PLAIN / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1 << 30, help="bytes per transfer")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    floors, ceilings = [], []
    for _ in range(args.reps):
        floors.append(_one_transfer(args.size))
        ceilings.append(_ceiling())
    floor, ceiling = statistics.median(floors), statistics.median(ceilings)
    print(f"minimal Python Noise pipe: {floor:,.1f} MB/s (median of {args.reps})")
    print(f"ChaCha20-Poly1305 encrypt ceiling, one core: {ceiling:,.1f} MB/s")
    print(f"floor / ceiling: {floor / ceiling:.2f}")


if __name__ == "__main__":
    main()
