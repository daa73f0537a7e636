#!/usr/bin/env python3
"""Attack soak of the `strowger` switch (Python 3 stdlib only).

Starts the real `strowger serve` on 127.0.0.1 with a temporary config (a few
users, default limits, no plugin) and, for `--duration` seconds (600 by
default; `--smoke`: 20), runs at the same time, each from its own loopback
source addresses:

1. mutated SIP over UDP (byte flips, truncations, duplicated and huge
   headers, invalid UTF-8, multi-byte characters in the start line, ...);
2. the same over TCP (persistent and reconnecting connections, some
   messages left partial);
3. slowloris: as many TCP connections as the switch admits, one byte a
   second, never a complete message (sources 127.0.1.x);
4. a response-cache attack: OPTIONS and REGISTER without credentials with
   unique branches and 15-27 kB of Via headers, over UDP and TCP, each
   source below the per-source rate limit;

while an honest client (its own address) sends an OPTIONS every 200 ms and a
digest-authenticated REGISTER every second over UDP, without
retransmissions, and measures each answer. The switch's RSS, descriptors,
CPU and liveness are sampled every second, its /metrics every 10 s.

Writes benches/results/soak-<UTC timestamp>.{md,json} (`-smoke` suffix for
--smoke runs) and exits nonzero when an honest request took more than
--latency-bound-ms or was not answered within 2 s, when RSS exceeded
--rss-bound-mb, or when the switch died. See benches/soak/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import resource
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benches" / "results"

SWITCH_IP = "127.0.0.1"
HONEST_IP = "127.0.9.1"
REALM = "strowger.local"
USERS = {f"10{i:02d}": f"soak-pw-{i:02d}-{secrets.token_hex(4)}" for i in range(1, 6)}
HONEST_USER = "1001"
ANSWER_TIMEOUT = 2.0  # an honest request not answered within this is a miss

# Source address ranges per attacker (the honest client is 127.0.9.1).
SLOWLORIS_NET = "127.0.1."
UDP_MUT_NET = "127.0.4."
TCP_MUT_NET = "127.0.5."
CACHE_NET = "127.0.3."


def log(msg: str) -> None:
    print(f"[soak {dt.datetime.now(dt.timezone.utc).strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def free_udp_tcp_port(ip: str) -> int:
    for _ in range(200):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((ip, 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def cpu_seconds_self() -> float:
    t = os.times()
    return t.user + t.system


# --------------------------------------------------------------------------
# SIP messages
# --------------------------------------------------------------------------


def tok(rng: random.Random, n: int = 10) -> str:
    return "%0*x" % (n, rng.getrandbits(4 * n))


def valid_messages(rng: random.Random, transport: str, src: str, dst: str) -> list[bytes]:
    """Well-formed requests and responses with fresh ids (mutation input)."""
    b, c, t = tok(rng), tok(rng), tok(rng, 8)
    via = f"Via: SIP/2.0/{transport} {src};branch=z9hG4bK{b};rport"
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )

    def req(method: str, ruri: str, extra: str = "", body: str = "", cseq: int = 1, to_tag: str = "") -> bytes:
        tt = f";tag={to_tag}" if to_tag else ""
        return (
            f"{method} {ruri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:1002@{REALM}>;tag={t}\r\nTo: <{ruri}>{tt}\r\nCall-ID: {c}@{src}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:1002@{src}>\r\nUser-Agent: soak-mutator\r\n{extra}"
            + (f"Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        ).encode()

    def resp(code: int, reason: str, method: str) -> bytes:
        return (
            f"SIP/2.0 {code} {reason}\r\nVia: SIP/2.0/{transport} {dst};branch=z9hG4bK{b}\r\n"
            f"From: <sip:1002@{REALM}>;tag={t}\r\nTo: <sip:1003@{REALM}>;tag={tok(rng, 6)}\r\n"
            f"Call-ID: {c}@{dst}\r\nCSeq: 1 {method}\r\nContact: <sip:1003@{src}>\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    bad_auth = (
        f'Authorization: Digest username="1001", realm="{REALM}", nonce="{tok(rng, 32)}", '
        f'uri="sip:{REALM}", response="{tok(rng, 32)}", algorithm=MD5, qop=auth, nc=00000001, cnonce="{tok(rng)}"\r\n'
    )
    return [
        req("INVITE", f"sip:1003@{REALM}", body=sdp),
        req("REGISTER", f"sip:{REALM}", extra="Expires: 60\r\n"),
        req("REGISTER", f"sip:{REALM}", extra="Expires: 60\r\n" + bad_auth, cseq=2),
        req("OPTIONS", f"sip:{dst}"),
        req("BYE", f"sip:1003@{dst}", cseq=2, to_tag=tok(rng, 6)),
        req("CANCEL", f"sip:1003@{REALM}"),
        req("ACK", f"sip:1003@{dst}", to_tag=tok(rng, 6)),
        req("INFO", f"sip:1003@{dst}", to_tag=tok(rng, 6)),
        resp(200, "OK", "INVITE"),
        resp(180, "Ringing", "INVITE"),
        resp(486, "Busy Here", "INVITE"),
        resp(200, "OK", "BYE"),
    ]


MULTIBYTE = ["ü", "€", "漢字", "😀", "\u200b", "Ω", "ß", "\ufeff"]
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\x28", b"\xc0\xaf", b"\x80\x80"]


def mutate(rng: random.Random, msg: bytes, max_len: int) -> bytes:
    """One to three random mutations of `msg`, at most `max_len` bytes."""
    m = bytearray(msg)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(11)
        if not m:
            m = bytearray(msg)
        if op == 0:  # byte flips
            for _ in range(rng.randint(1, 8)):
                m[rng.randrange(len(m))] = rng.randrange(256)
        elif op == 1:  # truncation
            m = m[: rng.randrange(len(m))]
        elif op == 2:  # duplicate a header line, up to a few hundred times
            lines = bytes(m).split(b"\r\n")
            if len(lines) > 2:
                i = rng.randrange(1, len(lines) - 1)
                if lines[i]:
                    lines[i:i] = [lines[i]] * rng.choice([1, 2, 10, 100, 400])
                m = bytearray(b"\r\n".join(lines))
        elif op == 3:  # huge header
            n = rng.choice([1000, 8000, 20000, 40000, 60000])
            hdr = b"X-Huge: " + bytes([rng.choice(b"abcdefgh;=,\"<>")]) * n + b"\r\n"
            i = m.find(b"\r\n")
            if i > 0:
                m[i + 2 : i + 2] = hdr
        elif op == 4:  # invalid UTF-8 at a random place
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(m) + 1)
                m[i:i] = rng.choice(INVALID_UTF8)
        elif op == 5:  # multi-byte characters in the start line
            line_end = m.find(b"\r\n")
            line_end = line_end if line_end > 0 else len(m)
            i = rng.randrange(line_end + 1)
            m[i:i] = rng.choice(MULTIBYTE).encode()
        elif op == 6:  # wrong Content-Length
            s = re.sub(
                rb"Content-Length: *\d+",
                b"Content-Length: " + rng.choice([b"-1", b"99999999999999999999", b"5", b"4000", b"abc", b" "]),
                bytes(m),
            )
            m = bytearray(s)
        elif op == 7:  # CRLF games: bare LF, missing blank line, extra CRLFs
            s = bytes(m)
            s = rng.choice([s.replace(b"\r\n", b"\n"), s.replace(b"\r\n\r\n", b"\r\n"), b"\r\n\r\n" + s, s + b"\r\n" * 50])
            m = bytearray(s)
        elif op == 8:  # a header without colon / folded / empty name
            i = m.find(b"\r\n")
            if i > 0:
                m[i + 2 : i + 2] = rng.choice([b"NoColonHere\r\n", b" folded continuation\r\n", b": empty name\r\n", b"Via:\r\n", b"CSeq: x y z\r\n", b"Call-ID:\r\n"])
        elif op == 9:  # NUL bytes and control characters
            for _ in range(rng.randint(1, 6)):
                m[rng.randrange(len(m) + 1) : 0] = bytes([rng.choice([0, 1, 7, 8, 27, 127])])
        else:  # swap two lines
            lines = bytes(m).split(b"\r\n")
            if len(lines) > 3:
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
                m = bytearray(b"\r\n".join(lines))
    return bytes(m[:max_len])


def via_block(rng: random.Random, via_bytes: int) -> str:
    """`via_bytes` of extra Via headers (random hops), CRLF-terminated."""
    vias, size = [], 0
    while size < via_bytes:
        v = f"Via: SIP/2.0/UDP 10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}:5060;branch=z9hG4bK{tok(rng, 24)}"
        vias.append(v)
        size += len(v) + 2
    return "\r\n".join(vias) + "\r\n"


def cache_message(rng: random.Random, transport: str, src: str, dst: str, vias: str, register: bool) -> bytes:
    """OPTIONS (or REGISTER without credentials) with a unique branch and
    Call-ID over the Via stack `vias`: the answer echoes them all."""
    method = "REGISTER" if register else "OPTIONS"
    ruri = f"sip:{REALM}" if register else f"sip:{dst}"
    to = f"<sip:1001@{REALM}>" if register else f"<sip:{dst}>"
    extra = f"Contact: <sip:1001@{src}>\r\nExpires: 60\r\n" if register else ""
    return (
        f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{transport} {src};branch=z9hG4bK{tok(rng, 16)};rport\r\n{vias}"
        f"Max-Forwards: 70\r\nFrom: <sip:1001@{REALM}>;tag={tok(rng, 8)}\r\nTo: {to}\r\n"
        f"Call-ID: {tok(rng, 16)}@{src}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


# --------------------------------------------------------------------------
# Workers (each in its own process: the honest client's timing is not
# disturbed by the attackers' GIL, and each attacker's CPU is measured)
# --------------------------------------------------------------------------


class Pacer:
    """Sends `rate` items per second in small batches (every 10 ms)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.t0 = time.monotonic()
        self.sent = 0

    def due(self) -> int:
        want = int((time.monotonic() - self.t0) * self.rate)
        n = want - self.sent
        # never burst more than 100 ms worth after a stall
        if n > self.rate / 10 + 1:
            self.sent = want - int(self.rate / 10)
            n = want - self.sent
        return max(0, n)

    def took(self, n: int) -> None:
        self.sent += n


def bind_udp(ip: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.bind((ip, 0))
    s.setblocking(False)
    return s


def drain_udp(s: socket.socket) -> int:
    n = 0
    while True:
        try:
            s.recv(65536)
            n += 1
        except (BlockingIOError, InterruptedError):
            return n
        except OSError:
            return n


def tcp_from(ip: str, dst: tuple[str, int], blocking: bool = True, timeout: float = 2.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close: no TIME_WAIT pile-up
    s.bind((ip, 0))
    if blocking:
        s.settimeout(timeout)
        s.connect(dst)
        s.setblocking(False)
    else:
        s.setblocking(False)
        try:
            s.connect(dst)
        except BlockingIOError:
            pass
    return s


def w_udp_mutator(dst, end, rate, n_ips, seed, q) -> None:
    rng = random.Random(seed)
    socks = [bind_udp(f"{UDP_MUT_NET}{i + 1}") for i in range(n_ips)]
    pacer = Pacer(rate)
    sent = errors = answers = 0
    nbytes = 0
    i = 0
    msgs: list[bytes] = []
    while time.monotonic() < end:
        n = pacer.due()
        for _ in range(n):
            s = socks[i % len(socks)]
            i += 1
            if not msgs:
                src = "%s:%d" % s.getsockname()
                msgs = valid_messages(rng, "UDP", src, "%s:%d" % dst)
                rng.shuffle(msgs)
            base = msgs.pop()
            data = base if rng.random() < 0.05 else mutate(rng, base, 65000)
            try:
                s.sendto(data, dst)
                sent += 1
                nbytes += len(data)
            except OSError:
                errors += 1
        pacer.took(n)
        for s in socks:
            answers += drain_udp(s)
        time.sleep(0.01)
    for s in socks:
        answers += drain_udp(s)
    q.put(("udp_mutator", {"sent": sent, "bytes": nbytes, "send_errors": errors, "answers": answers,
                           "sources": n_ips, "cpu_s": cpu_seconds_self()}))


def w_tcp_mutator(dst, end, rate, n_ips, conns_per_ip, seed, q) -> None:
    """Mutated messages over TCP: persistent connections (reconnected when
    the switch closes them); one in 8 messages is sent partially and the
    connection is dropped after it (reconnect)."""
    rng = random.Random(seed)
    ips = [f"{TCP_MUT_NET}{i + 1}" for i in range(n_ips)]
    conns: list[socket.socket | None] = [None] * (n_ips * conns_per_ip)
    st = {"sent": 0, "bytes": 0, "partial": 0, "connects": 0, "connect_failures": 0,
          "closed_by_switch": 0, "answers_bytes": 0, "sources": n_ips}
    pacer = Pacer(rate)
    k = 0
    reconnect_after = [0.0] * len(conns)

    def reopen(j: int) -> socket.socket | None:
        if time.monotonic() < reconnect_after[j]:
            return None
        try:
            s = tcp_from(ips[j % n_ips], dst, timeout=1.0)
            st["connects"] += 1
            return s
        except OSError:
            st["connect_failures"] += 1
            reconnect_after[j] = time.monotonic() + 0.2
            return None

    while time.monotonic() < end:
        n = pacer.due()
        for _ in range(n):
            j = k % len(conns)
            k += 1
            s = conns[j]
            if s is None:
                s = conns[j] = reopen(j)
                if s is None:
                    continue
            src = "%s:%d" % s.getsockname()
            base = rng.choice(valid_messages(rng, "TCP", src, "%s:%d" % dst))
            data = base if rng.random() < 0.1 else mutate(rng, base, 70000)
            partial = rng.random() < 0.125
            if partial:
                data = data[: rng.randrange(1, max(2, len(data)))]
            try:
                s.send(data)  # non-blocking: a full buffer sends less, which is one more partial message
                st["sent"] += 1
                st["bytes"] += len(data)
                if partial:
                    st["partial"] += 1
                    s.close()
                    conns[j] = None
            except OSError:
                st["closed_by_switch"] += 1
                s.close()
                conns[j] = None
        pacer.took(n)
        # read answers; notice connections the switch closed
        for j, s in enumerate(conns):
            if s is None:
                continue
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        st["closed_by_switch"] += 1
                        s.close()
                        conns[j] = None
                        break
                    st["answers_bytes"] += len(b)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                st["closed_by_switch"] += 1
                s.close()
                conns[j] = None
        time.sleep(0.01)
    for s in conns:
        if s is not None:
            s.close()
    st["cpu_s"] = cpu_seconds_self()
    q.put(("tcp_mutator", st))


def w_slowloris(dst, end, n_ips, max_conns, q) -> None:
    """As many connections as the switch admits, from 127.0.1.1..n, each
    sending one byte a second of a message that never completes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    max_conns = min(max_conns, hard - 200)
    ips = [f"{SLOWLORIS_NET}{i + 1}" for i in range(n_ips)]
    head = b"OPTIONS sip:slow@" + dst[0].encode() + b" SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.1.1:9;branch=z9hG4bKslow\r\nX-Slow: "
    # fd -> [socket, opened_at, bytes_sent, ip_index]
    conns: dict[int, list] = {}
    st = {"connects": 0, "connect_errors": 0, "closed_before_first_byte": 0, "closed_after": 0,
          "lifetimes_s": [], "bytes_sent": 0, "open_samples": [], "sources": n_ips}
    k = 0
    next_tick = time.monotonic()
    open_per_tick = 400  # new connections per second at most
    while time.monotonic() < end:
        now = time.monotonic()
        # open up to open_per_tick new connections
        budget = open_per_tick
        while len(conns) < max_conns and budget > 0:
            ip = ips[k % n_ips]
            k += 1
            budget -= 1
            try:
                s = tcp_from(ip, dst, blocking=False)
            except OSError:
                st["connect_errors"] += 1
                break
            conns[s.fileno()] = [s, now, 0]
            st["connects"] += 1
        # one byte per connection
        dead = []
        for fd, c in conns.items():
            s = c[0]
            try:
                b = s.recv(4096)
                if not b:
                    dead.append(fd)
                    continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                dead.append(fd)
                continue
            byte = head[c[2] : c[2] + 1] or b"a"
            try:
                if s.send(byte) == 1:
                    c[2] += 1
                    st["bytes_sent"] += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                dead.append(fd)
        for fd in dead:
            s, t0, nsent = conns.pop(fd)
            s.close()
            if nsent <= 1:
                st["closed_before_first_byte"] += 1
            else:
                st["closed_after"] += 1
                if len(st["lifetimes_s"]) < 20000:
                    st["lifetimes_s"].append(round(now - t0, 1))
        st["open_samples"].append(len(conns))
        next_tick += 1.0
        time.sleep(max(0.0, next_tick - time.monotonic()))
    for c in conns.values():
        c[0].close()
    st["cpu_s"] = cpu_seconds_self()
    q.put(("slowloris", st))


def w_cache(dst, end, rate, n_ips, seed, q) -> None:
    """Response-cache attack: unique transactions with big Via stacks, over
    UDP and TCP, `rate` messages/s in total spread over `n_ips` sources."""
    rng = random.Random(seed)
    ips = [f"{CACHE_NET}{i + 1}" for i in range(n_ips)]
    udp = [bind_udp(ip) for ip in ips]
    tcp: list[socket.socket | None] = [None] * n_ips
    st = {"sent_udp": 0, "sent_tcp": 0, "bytes": 0, "answers_udp": 0, "answers_tcp_bytes": 0,
          "tcp_connects": 0, "tcp_connect_failures": 0, "tcp_closed_by_switch": 0, "tcp_partial_sends": 0,
          "sources": n_ips}
    # Via sizes: 27 kB (the figure; its answer is above the cache's
    # default per-entry cap of 16 KiB, so it is built and sent, not kept),
    # 15.5 kB (about the largest answer the default cache keeps: these fill
    # its byte budget) and, over UDP, 31.5 kB (about the largest datagram
    # below the default max_message_size of 32 KiB). Blocks are built once;
    # each message has its own branch, Call-ID and tag.
    SIZES_TCP = [27000, 15500, 15500]
    SIZES_UDP = [27000, 15500, 15500, 31500]
    blocks = {n: [via_block(rng, n) for _ in range(8)] for n in set(SIZES_TCP + SIZES_UDP)}
    pacer = Pacer(rate)
    pending_out: list[bytes] = [b""] * n_ips
    k = 0
    while time.monotonic() < end:
        n = pacer.due()
        for _ in range(n):
            j = k % n_ips
            k += 1
            over_tcp = rng.random() < 0.5
            size = rng.choice(SIZES_TCP if over_tcp else SIZES_UDP)
            vias = rng.choice(blocks[size])
            register = rng.random() < 0.3
            if over_tcp:
                s = tcp[j]
                if s is None:
                    try:
                        s = tcp[j] = tcp_from(ips[j], dst, timeout=1.0)
                        st["tcp_connects"] += 1
                    except OSError:
                        st["tcp_connect_failures"] += 1
                        continue
                if pending_out[j]:
                    continue  # the previous message is still being written
                src = "%s:%d" % s.getsockname()
                data = cache_message(rng, "TCP", src, "%s:%d" % dst, vias, register)
                try:
                    w = s.send(data)
                    if w < len(data):
                        pending_out[j] = data[w:]
                        st["tcp_partial_sends"] += 1
                    st["sent_tcp"] += 1
                    st["bytes"] += len(data)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    st["tcp_closed_by_switch"] += 1
                    s.close()
                    tcp[j] = None
                    pending_out[j] = b""
            else:
                s = udp[j]
                src = "%s:%d" % s.getsockname()
                data = cache_message(rng, "UDP", src, "%s:%d" % dst, vias, register)
                try:
                    s.sendto(data, dst)
                    st["sent_udp"] += 1
                    st["bytes"] += len(data)
                except OSError:
                    pass
        pacer.took(n)
        for j in range(n_ips):
            st["answers_udp"] += drain_udp(udp[j])
            s = tcp[j]
            if s is None:
                continue
            try:
                if pending_out[j]:
                    w = s.send(pending_out[j])
                    pending_out[j] = pending_out[j][w:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass
            try:
                while True:
                    b = s.recv(1 << 17)
                    if not b:
                        raise ConnectionResetError
                    st["answers_tcp_bytes"] += len(b)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                st["tcp_closed_by_switch"] += 1
                s.close()
                tcp[j] = None
                pending_out[j] = b""
        time.sleep(0.01)
    st["cpu_s"] = cpu_seconds_self()
    q.put(("cache", st))


# --- the honest client ---------------------------------------------------


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def parse_response(data: bytes) -> dict | None:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    if not lines or not lines[0].startswith("SIP/2.0 "):
        return None
    try:
        code = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    hdrs: dict[str, list[str]] = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    call_id = (hdrs.get("call-id") or hdrs.get("i") or [""])[0]
    cseq = (hdrs.get("cseq") or ["0 X"])[0].split()
    return {"code": code, "call_id": call_id, "cseq": int(cseq[0]) if cseq[0].isdigit() else 0,
            "method": cseq[-1], "hdrs": hdrs}


def digest_params(value: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(r'([A-Za-z-]+)\s*=\s*("([^"]*)"|[^,\s]+)', value):
        out[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def w_honest(dst, end, options_every, register_every, q) -> None:
    """OPTIONS every `options_every` s and a digest REGISTER every
    `register_every` s over UDP from HONEST_IP; no retransmissions: a
    request not answered within ANSWER_TIMEOUT is a miss."""
    rng = random.Random()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HONEST_IP, 0))
    s.setblocking(False)
    local = "%s:%d" % s.getsockname()
    dst_s = "%s:%d" % dst
    password = USERS[HONEST_USER]
    reg_call_id = f"{tok(rng, 16)}@{HONEST_IP}"
    from_tag = tok(rng, 8)
    reg_cseq = 0
    # (call_id, cseq) -> (kind, sent_at, wall_at)
    outstanding: dict[tuple[str, int], tuple[str, float, float]] = {}
    lat = {"options": [], "register_auth": [], "register_challenge": []}
    misses = {"options": [], "register_auth": [], "register_challenge": []}
    unexpected: list[str] = []
    slowest: list[tuple[float, str, float]] = []  # (latency_ms, kind, unix time)
    sent = {"options": 0, "register_auth": 0, "register_challenge": 0}
    t0 = time.monotonic()
    next_opt = t0
    next_reg = t0 + 0.1
    nonce_n = 0

    def register(auth: str | None) -> None:
        nonlocal reg_cseq
        reg_cseq += 1
        extra = f"Authorization: {auth}\r\n" if auth else ""
        msg = (
            f"REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tok(rng, 16)};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{HONEST_USER}@{REALM}>;tag={from_tag}\r\nTo: <sip:{HONEST_USER}@{REALM}>\r\n"
            f"Call-ID: {reg_call_id}\r\nCSeq: {reg_cseq} REGISTER\r\nContact: <sip:{HONEST_USER}@{local}>\r\n"
            f"Expires: 120\r\nUser-Agent: soak-honest\r\n{extra}Content-Length: 0\r\n\r\n"
        ).encode()
        kind = "register_auth" if auth else "register_challenge"
        outstanding[(reg_call_id, reg_cseq)] = (kind, time.perf_counter(), time.time())
        sent[kind] += 1
        s.sendto(msg, dst)

    def options() -> None:
        cid = f"{tok(rng, 16)}@{HONEST_IP}"
        msg = (
            f"OPTIONS sip:{dst_s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tok(rng, 16)};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:ping@{HONEST_IP}>;tag={tok(rng, 8)}\r\nTo: <sip:{dst_s}>\r\n"
            f"Call-ID: {cid}\r\nCSeq: 1 OPTIONS\r\nUser-Agent: soak-honest\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        outstanding[(cid, 1)] = ("options", time.perf_counter(), time.time())
        sent["options"] += 1
        s.sendto(msg, dst)

    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    while True:
        now = time.monotonic()
        if now >= end and not outstanding:
            break
        if now < end and now >= next_opt:
            options()
            next_opt += options_every
        if now < end and now >= next_reg:
            register(None)
            next_reg += register_every
        # expire misses
        pc = time.perf_counter()
        for key, (kind, t_sent, wall) in list(outstanding.items()):
            if pc - t_sent > ANSWER_TIMEOUT:
                del outstanding[key]
                misses[kind].append(round(wall, 3))
        if now > end + ANSWER_TIMEOUT + 1:
            break
        wait = max(0.0, min(next_opt, next_reg) - time.monotonic()) if now < end else 0.05
        for _key, _ev in sel.select(timeout=min(wait, 0.05)):
            while True:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                t_recv = time.perf_counter()
                r = parse_response(data)
                if r is None:
                    unexpected.append(data[:80].decode("utf-8", "replace"))
                    continue
                key = (r["call_id"], r["cseq"])
                if key not in outstanding:
                    continue  # a late answer to a miss, or a provisional's final
                kind, t_sent, wall = outstanding[key]
                if r["code"] < 200:
                    continue
                del outstanding[key]
                ms = (t_recv - t_sent) * 1000
                lat[kind].append(round(ms, 3))
                if len(slowest) < 20 or ms > slowest[0][0]:
                    slowest.append((round(ms, 3), kind, round(wall, 3)))
                    slowest.sort()
                    slowest[:] = slowest[-20:]
                expect = {"options": 200, "register_challenge": 401, "register_auth": 200}[kind]
                if r["code"] != expect:
                    unexpected.append(f"{kind}: {r['code']}")
                    misses[kind].append(round(wall, 3))
                    lat[kind].pop()
                    continue
                if kind == "register_challenge":
                    chal = None
                    for v in r["hdrs"].get("www-authenticate", []):
                        p = digest_params(v)
                        if p.get("algorithm", "MD5").upper() == "MD5":
                            chal = p
                    if chal is None:
                        unexpected.append("401 without an MD5 challenge")
                        continue
                    nonce_n += 1
                    cnonce = tok(rng, 16)
                    uri = f"sip:{REALM}"
                    ha1 = md5(f"{HONEST_USER}:{chal['realm']}:{password}")
                    ha2 = md5(f"REGISTER:{uri}")
                    resp = md5(f"{ha1}:{chal['nonce']}:00000001:{cnonce}:auth:{ha2}")
                    auth = (
                        f'Digest username="{HONEST_USER}", realm="{chal["realm"]}", nonce="{chal["nonce"]}", '
                        f'uri="{uri}", response="{resp}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc=00000001'
                        + (f', opaque="{chal["opaque"]}"' if "opaque" in chal else "")
                    )
                    register(auth)
    q.put(("honest", {"latency_ms": lat, "misses": misses, "sent": sent, "slowest": slowest,
                      "unexpected": unexpected[:50], "unexpected_count": len(unexpected),
                      "cpu_s": cpu_seconds_self()}))


# --------------------------------------------------------------------------
# The switch
# --------------------------------------------------------------------------


def write_config(d: Path, port: int, admin_port: int, token: str) -> Path:
    users = "".join(f'\n[[users]]\nuser = "{u}"\npassword = "{p}"\n' for u, p in USERS.items())
    # Only what is needed to run on free ports in a temp dir: every limit
    # ([sip] max_connections*, tcp_*_timeout_s, response_cache_*,
    # [protection]) keeps its default.
    cfg = f"""# generated by benches/soak/soak.py: defaults except ports and paths
[sip]
listen = ["udp:{SWITCH_IP}:{port}", "tcp:{SWITCH_IP}:{port}"]

[store]
path = "strowger.db"

[plugins]
dir = "{d / 'plugins'}"

[admin]
listen = "127.0.0.1:{admin_port}"
token = "{token}"
{users}"""
    (d / "plugins").mkdir(exist_ok=True)
    p = d / "strowger.toml"
    p.write_text(cfg)
    return p


def sip_ping(dst: tuple[str, int], timeout: float = 0.5) -> int | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HONEST_IP, 0))
    s.settimeout(timeout)
    local = "%s:%d" % s.getsockname()
    b = secrets.token_hex(8)
    msg = (
        f"OPTIONS sip:{dst[0]}:{dst[1]} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:ping@{HONEST_IP}>;tag={b}\r\nTo: <sip:{dst[0]}>\r\n"
        f"Call-ID: {b}@ping\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    try:
        s.sendto(msg, dst)
        r = parse_response(s.recv(65536))
        return r["code"] if r else None
    except OSError:
        return None
    finally:
        s.close()


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def fetch_metrics(admin: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, v = line.rpartition(" ")
        if name.startswith("strowger_sip_") or name.startswith("strowger_registrations") or name.startswith(
            "strowger_calls_active"
        ) or name.startswith("strowger_protection"):
            try:
                out[name] = float(v)
            except ValueError:
                pass
    return out


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    ys = sorted(xs)
    i = min(len(ys) - 1, max(0, int(round(p / 100 * len(ys) + 0.5)) - 1))
    return ys[i]


def summarize(xs: list[float]) -> dict:
    return {
        "n": len(xs),
        "p50": pct(xs, 50),
        "p99": pct(xs, 99),
        "p99_9": pct(xs, 99.9),
        "max": max(xs) if xs else None,
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def udp_drops(port: int) -> int | None:
    """Kernel drops of the UDP socket(s) bound to `port` (/proc/net/udp:
    datagrams the receive buffer had no room for)."""
    total = None
    for f in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) >= 13 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                total = (total or 0) + int(cols[12])
    return total


def main() -> int:
    tgt = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strowger-bin", default=f"{tgt}/release/strowger")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of attack (default 600)")
    ap.add_argument("--smoke", action="store_true", help="20 s, for a quick check")
    ap.add_argument("--rss-bound-mb", type=float, default=256.0, help="fail if VmRSS ever exceeds this (MiB)")
    ap.add_argument("--latency-bound-ms", type=float, default=100.0, help="fail if an honest answer takes longer")
    ap.add_argument("--udp-rate", type=float, default=1000.0, help="mutated UDP datagrams/s (all sources)")
    ap.add_argument("--udp-sources", type=int, default=6)
    ap.add_argument("--tcp-rate", type=float, default=200.0, help="mutated TCP messages/s (all connections)")
    ap.add_argument("--tcp-sources", type=int, default=4)
    ap.add_argument("--tcp-conns-per-source", type=int, default=4)
    ap.add_argument("--slowloris-sources", type=int, default=20,
                    help="source IPs 127.0.1.1..N; with the default per-IP cap of 256, 20 sources exceed the global cap")
    ap.add_argument("--slowloris-max", type=int, default=6000, help="most slowloris connections held at once")
    ap.add_argument("--cache-rate", type=float, default=300.0, help="cache-attack messages/s (all sources)")
    ap.add_argument("--cache-sources", type=int, default=8)
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("--keep-dir", action="store_true", help="keep the switch's temp dir (config, log, store)")
    args = ap.parse_args()
    if args.smoke:
        args.duration = 20.0

    binp = Path(args.strowger_bin)
    if not binp.is_file():
        log(f"no strowger binary at {binp} (cargo build --release -p strowger, or --strowger-bin)")
        return 2

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="strowger-soak-"))
    port = free_udp_tcp_port(SWITCH_IP)
    admin_port = free_udp_tcp_port("127.0.0.1")
    token = secrets.token_hex(16)
    cfgp = write_config(work, port, admin_port, token)
    dst = (SWITCH_IP, port)
    admin = f"127.0.0.1:{admin_port}"
    load_start = loadavg()
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    log(f"uptime at start: {uptime_start}")
    logf = open(work / "strowger.log", "wb")
    sw = subprocess.Popen([str(binp), "serve", "--config", str(cfgp)], cwd=work, stdin=subprocess.DEVNULL,
                          stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, "STROWGER_LOG": "info"})
    deadline = time.monotonic() + 90
    while sip_ping(dst) != 200:
        if sw.poll() is not None or time.monotonic() > deadline:
            log("the switch did not start; log:\n" + (work / "strowger.log").read_text(errors="replace")[-4000:])
            sw.kill()
            return 2
    log(f"strowger pid {sw.pid} on udp+tcp {SWITCH_IP}:{port}, admin {admin}, dir {work}")
    m0 = fetch_metrics(admin)
    st0 = proc_status(sw.pid)
    cpu0 = proc_cpu_s(sw.pid)

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    t_start = time.monotonic()
    end = t_start + args.duration
    seed = random.randrange(1 << 30)
    workers = [
        ctx.Process(target=w_honest, args=(dst, end, 0.2, 1.0, q), name="honest"),
        ctx.Process(target=w_udp_mutator, args=(dst, end, args.udp_rate, args.udp_sources, seed + 1, q), name="udp"),
        ctx.Process(target=w_tcp_mutator, args=(dst, end, args.tcp_rate, args.tcp_sources,
                                                args.tcp_conns_per_source, seed + 2, q), name="tcp"),
        ctx.Process(target=w_cache, args=(dst, end, args.cache_rate, args.cache_sources, seed + 3, q), name="cache"),
        ctx.Process(target=w_slowloris, args=(dst, end, args.slowloris_sources, args.slowloris_max, q),
                    name="slowloris"),
    ]
    for w in workers:
        w.start()
    log(f"attack running for {args.duration:.0f} s (seed {seed})")

    samples = []
    metric_series = []
    died_at = None
    next_s = t_start
    last_log = t_start
    while time.monotonic() < end:
        next_s += 1.0
        time.sleep(max(0.0, next_s - time.monotonic()))
        t = round(time.monotonic() - t_start, 1)
        alive = sw.poll() is None
        if not alive and died_at is None:
            died_at = t
            log(f"the switch DIED at t={t}s with exit code {sw.returncode}")
        stt = proc_status(sw.pid) if alive else {}
        samples.append({"t": t, "alive": alive, "rss_kb": stt.get("VmRSS"), "fds": fd_count(sw.pid) if alive else None,
                        "threads": stt.get("Threads"), "cpu_s": round(proc_cpu_s(sw.pid) - cpu0, 2) if alive else None})
        if alive and (len(samples) % 10 == 0):
            m = fetch_metrics(admin)
            metric_series.append({"t": t, **{k: v for k, v in m.items() if k in (
                "strowger_sip_response_cache_entries", "strowger_sip_response_cache_bytes",
                "strowger_sip_connections_open", "strowger_sip_response_cache_evictions_total")}})
        if time.monotonic() - last_log >= (5 if args.smoke else 30):
            last_log = time.monotonic()
            s = samples[-1]
            log(f"t={t:.0f}s alive={alive} rss={(s['rss_kb'] or 0) / 1024:.1f} MiB fds={s['fds']} "
                f"switch cpu={s['cpu_s']} s")

    log("attack over; collecting")
    results: dict[str, dict] = {}
    for _ in workers:
        try:
            name, r = q.get(timeout=60)
            results[name] = r
        except Exception:  # noqa: BLE001
            break
    for w in workers:
        w.join(timeout=30)
        if w.is_alive():
            w.kill()
    wall = time.monotonic() - t_start
    alive_end = sw.poll() is None
    if not alive_end and died_at is None:
        died_at = round(wall, 1)
    st_end = proc_status(sw.pid) if alive_end else {}
    kernel_drops_end = udp_drops(port)
    m_end = fetch_metrics(admin) if alive_end else {}
    ping_after = sip_ping(dst, 1.0) if alive_end else None
    switch_cpu = proc_cpu_s(sw.pid) - cpu0 if alive_end else None
    exit_code = None
    if alive_end:
        sw.send_signal(signal.SIGTERM)
        try:
            exit_code = sw.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sw.kill()
            exit_code = "killed after 20 s"
    else:
        exit_code = sw.returncode
    logf.close()
    load_end = loadavg()
    uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    log(f"uptime at end: {uptime_end}")
    switch_log = (work / "strowger.log").read_text(errors="replace")
    warn_lines = [ln for ln in switch_log.splitlines() if " WARN " in ln or " ERROR " in ln]

    # --- figures ---------------------------------------------------------
    rss = [s["rss_kb"] for s in samples if s["rss_kb"]]
    fds = [s["fds"] for s in samples if s["fds"] is not None and s["fds"] >= 0]
    h = results.get("honest", {})
    lat = h.get("latency_ms", {})
    miss = h.get("misses", {})
    all_lat = lat.get("options", []) + lat.get("register_auth", []) + lat.get("register_challenge", [])
    over = [x for x in all_lat if x > args.latency_bound_ms]
    n_miss = sum(len(v) for v in miss.values())
    udp = results.get("udp_mutator", {})
    tcp = results.get("tcp_mutator", {})
    slow = results.get("slowloris", {})
    cache = results.get("cache", {})
    open_samples = slow.get("open_samples", [])
    steady = open_samples[len(open_samples) // 4:] or open_samples
    gen_cpu = sum(r.get("cpu_s", 0) for r in results.values()) + cpu_seconds_self()
    crashes = 0 if died_at is None else 1
    fail_reasons = []
    if crashes:
        fail_reasons.append(f"the switch died at t={died_at}s (exit {exit_code})")
    if over:
        fail_reasons.append(f"{len(over)} honest answers above {args.latency_bound_ms:g} ms")
    if n_miss:
        fail_reasons.append(f"{n_miss} honest requests not answered (or wrongly answered) within {ANSWER_TIMEOUT:g} s")
    if rss and max(rss) / 1024 > args.rss_bound_mb:
        fail_reasons.append(f"RSS reached {max(rss) / 1024:.1f} MiB > {args.rss_bound_mb:g} MiB")
    if not h:
        fail_reasons.append("the honest client reported nothing")
    res = {
        "kind": "soak",
        "timestamp": stamp,
        "smoke": args.smoke,
        "passed": not fail_reasons,
        "fail_reasons": fail_reasons,
        "bounds": {"rss_mb": args.rss_bound_mb, "latency_ms": args.latency_bound_ms, "answer_timeout_s": ANSWER_TIMEOUT},
        "duration_s": args.duration,
        "wall_s": round(wall, 1),
        "machine": {
            "cores": os.cpu_count(),
            "uptime_start": uptime_start,
            "uptime_end": uptime_end,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "git_rev": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                      text=True).stdout.strip(),
            "strowger_bin": str(binp),
        },
        "config": cfgp.read_text().replace(token, "***"),
        "args": {k: v for k, v in vars(args).items()},
        "attack": {
            "udp_mutated_per_s": round(udp.get("sent", 0) / args.duration, 1),
            "udp_mutated": udp,
            "tcp_mutated_per_s": round(tcp.get("sent", 0) / args.duration, 1),
            "tcp_mutated": tcp,
            "slowloris_open_max": max(open_samples) if open_samples else 0,
            "slowloris_open_median_steady": sorted(steady)[len(steady) // 2] if steady else 0,
            "slowloris": {k: v for k, v in slow.items() if k not in ("open_samples", "lifetimes_s")},
            "slowloris_lifetime_s": summarize(slow.get("lifetimes_s", [])),
            "cache_msgs_per_s": round((cache.get("sent_udp", 0) + cache.get("sent_tcp", 0)) / args.duration, 1),
            "cache_mb_per_s": round(cache.get("bytes", 0) / args.duration / 1e6, 2),
            "cache": cache,
        },
        "honest": {
            "options": {**summarize(lat.get("options", [])), "sent": h.get("sent", {}).get("options"),
                        "misses": len(miss.get("options", []))},
            "register_auth": {**summarize(lat.get("register_auth", [])), "sent": h.get("sent", {}).get("register_auth"),
                              "misses": len(miss.get("register_auth", []))},
            "register_challenge": {**summarize(lat.get("register_challenge", [])),
                                   "sent": h.get("sent", {}).get("register_challenge"),
                                   "misses": len(miss.get("register_challenge", []))},
            "above_bound": len(over),
            "miss_times_unix": miss,
            "slowest": h.get("slowest", []),
            "unexpected": h.get("unexpected", []),
        },
        "switch": {
            "rss_start_mb": round(st0.get("VmRSS", 0) / 1024, 1),
            "rss_max_mb": round(max(rss) / 1024, 1) if rss else None,
            "rss_end_mb": round(st_end.get("VmRSS", 0) / 1024, 1) if st_end else None,
            "vmhwm_mb": round(st_end.get("VmHWM", 0) / 1024, 1) if st_end else None,
            "fds_max": max(fds) if fds else None,
            "fds_end": fds[-1] if fds else None,
            "udp_kernel_drops": kernel_drops_end,
            "cpu_s": round(switch_cpu, 1) if switch_cpu is not None else None,
            "cpu_pct_of_one_core": round(100 * switch_cpu / wall, 1) if switch_cpu else None,
            "crashes": crashes,
            "died_at_s": died_at,
            "exit_code": exit_code,
            "answers_options_after": ping_after,
            "series_max": {k: max((m.get(k, 0) for m in metric_series), default=None) for k in (
                "strowger_sip_connections_open", "strowger_sip_response_cache_entries",
                "strowger_sip_response_cache_bytes")},
            "warn_error_lines": len(warn_lines),
            "warn_error_sample": warn_lines[:40],
        },
        "generator": {
            "cpu_s": round(gen_cpu, 1),
            "cpu_pct_of_one_core": round(100 * gen_cpu / wall, 1),
            "per_worker_cpu_s": {k: round(r.get("cpu_s", 0), 1) for k, r in results.items()},
        },
        "metrics_start": m0,
        "metrics_end": m_end,
        "metrics_series": metric_series,
        "samples": samples,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = out / (f"soak-{stamp}" + ("-smoke" if args.smoke else ""))
    base.with_suffix(".json").write_text(json.dumps(res, indent=1))
    md = render_md(res)
    base.with_suffix(".md").write_text(md)
    print(md)
    log(f"wrote {base}.md and .json")
    if args.keep_dir:
        log(f"switch dir kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if res["passed"] else 1


def fmt(x, nd=1) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def render_md(r: dict) -> str:
    a, h, s, g = r["attack"], r["honest"], r["switch"], r["generator"]
    me = r["metrics_end"]
    lines = [
        f"# Strowger attack soak {r['timestamp']}" + (" (smoke)" if r["smoke"] else ""),
        "",
        f"**{'PASS' if r['passed'] else 'FAIL'}**" + ("" if r["passed"] else ": " + "; ".join(r["fail_reasons"])),
        "",
        f"Duration {r['duration_s']:.0f} s (wall {r['wall_s']} s), {r['machine']['cores']} cores, "
        f"git {r['machine']['git_rev']}. Bounds: RSS < {r['bounds']['rss_mb']:g} MiB, honest answers < "
        f"{r['bounds']['latency_ms']:g} ms, none missing (no retransmissions; {r['bounds']['answer_timeout_s']:g} s = miss).",
        "",
        f"- load at start: `{r['machine']['uptime_start']}`",
        f"- load at end: `{r['machine']['uptime_end']}`",
        "",
        "## Attack achieved",
        "",
        "| attack | figure |",
        "|---|---|",
        f"| mutated SIP over UDP | {a['udp_mutated_per_s']} datagrams/s from {a['udp_mutated'].get('sources')} sources "
        f"({a['udp_mutated'].get('sent', 0)} sent, {a['udp_mutated'].get('answers', 0)} answers received) |",
        f"| mutated SIP over TCP | {a['tcp_mutated_per_s']} messages/s from {a['tcp_mutated'].get('sources')} sources, "
        f"{a['tcp_mutated'].get('partial', 0)} partial, {a['tcp_mutated'].get('connects', 0)} connects, "
        f"{a['tcp_mutated'].get('connect_failures', 0)} connect failures, {a['tcp_mutated'].get('closed_by_switch', 0)} closed by the switch |",
        f"| slowloris | max {a['slowloris_open_max']} connections open at once (median {a['slowloris_open_median_steady']} "
        f"after the first quarter), {a['slowloris'].get('sources')} sources, {a['slowloris'].get('connects', 0)} connects, "
        f"{a['slowloris'].get('closed_before_first_byte', 0)} closed at once (caps), lifetime of the others p50 "
        f"{fmt(a['slowloris_lifetime_s']['p50'])} s / max {fmt(a['slowloris_lifetime_s']['max'])} s |",
        f"| response-cache attack | {a['cache_msgs_per_s']} messages/s ({a['cache_mb_per_s']} MB/s) from "
        f"{a['cache'].get('sources')} sources: {a['cache'].get('sent_udp', 0)} over UDP, {a['cache'].get('sent_tcp', 0)} over TCP |",
        "",
        "## Honest client (UDP, 127.0.9.1)",
        "",
        "| request | sent | answered | p50 ms | p99 ms | p99.9 ms | max ms | misses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, name in (("options", "OPTIONS (every 200 ms)"), ("register_auth", "REGISTER with credentials → 200 (every 1 s)"),
                      ("register_challenge", "REGISTER → 401 challenge")):
        x = h[key]
        lines.append(f"| {name} | {fmt(x['sent'])} | {x['n']} | {fmt(x['p50'], 2)} | {fmt(x['p99'], 2)} | "
                     f"{fmt(x['p99_9'], 2)} | {fmt(x['max'], 2)} | {x['misses']} |")
    lines += [
        "",
        f"Answers above {r['bounds']['latency_ms']:g} ms: {h['above_bound']}.",
        "",
        "## Switch",
        "",
        "| figure | value |",
        "|---|---|",
        f"| RSS start / max / end (MiB) | {fmt(s['rss_start_mb'])} / {fmt(s['rss_max_mb'])} / {fmt(s['rss_end_mb'])} |",
        f"| VmHWM at end (MiB) | {fmt(s['vmhwm_mb'])} |",
        f"| file descriptors max / end | {fmt(s['fds_max'])} / {fmt(s['fds_end'])} |",
        f"| SIP UDP socket: datagrams dropped by the kernel (receive buffer full) | {fmt(s.get('udp_kernel_drops'))} |",
        f"| CPU (s, % of one core) | {fmt(s['cpu_s'])} ({fmt(s['cpu_pct_of_one_core'])} %) |",
        f"| crashes | {s['crashes']} |",
        f"| exit code after SIGTERM | {s['exit_code']} |",
        f"| OPTIONS answered after the attack | {s['answers_options_after']} |",
        f"| WARN/ERROR log lines | {s['warn_error_lines']} |",
        f"| max during the run (sampled every 10 s): connections open / cache entries / cache MiB | "
        f"{fmt(s['series_max'].get('strowger_sip_connections_open'))} / "
        f"{fmt(s['series_max'].get('strowger_sip_response_cache_entries'))} / "
        f"{fmt((s['series_max'].get('strowger_sip_response_cache_bytes') or 0) / 1048576)} |",
        "",
        "## Generator",
        "",
        f"CPU {g['cpu_s']} s ({g['cpu_pct_of_one_core']} % of one core): "
        + ", ".join(f"{k} {v} s" for k, v in g["per_worker_cpu_s"].items()),
        "",
        "## /metrics at the end (guards)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for k in sorted(me):
        lines.append(f"| `{k}` | {me[k]:g} |")
    if s["warn_error_sample"]:
        lines += ["", "## WARN/ERROR lines of the switch (first 40)", "", "```"]
        lines += [ln[:300] for ln in s["warn_error_sample"]]
        lines += ["```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
