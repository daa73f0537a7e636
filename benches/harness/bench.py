#!/usr/bin/env python3
"""Strowger side-by-side benchmark harness.

Runs SIPp against SIPp itself (the harness ceiling), Kamailio (native cfg and
KEMI Lua), and Strowger, on 127.0.0.x only, with bounded durations, and
writes a markdown + JSON table with the ratio Strowger / best other.

Called by benches/run.sh (which installs packages and builds); can be run
directly once the binaries exist:

    python3 benches/harness/bench.py --smoke --only calls

Parts: calls, registrations, concurrent, media, decisions. See
benches/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHES = ROOT / "benches"
SIPP_DIR = BENCHES / "sipp"
KAM_DIR = BENCHES / "kamailio"

# Addresses: everything on loopback, one address per role so that source
# addresses tell the roles apart (Strowger trusts the UAC trunk by source IP).
UAC_IP = "127.0.0.1"
SUT_IP = "127.0.0.2"
UAS_IP = "127.0.0.3"

PARTS = ["calls", "registrations", "concurrent", "media", "decisions"]

# Pass criteria for one step (see benches/README.md).
MAX_FAILED_RATIO = 0.001  # < 0.1 % failed calls
MAX_RETRANS_RATIO = 0.01  # retransmissions (UAC + UAS) <= 1 % of calls
MIN_ACHIEVED_RATIO = 0.95  # calls created at >= 95 % of the target rate

# Every system first gets an uncounted warm-up (caches, lazy start-up work).
WARMUP_RATE = 50
WARMUP_S = 2

# The Go twin of the routing policy (benches/plugins/bench-prefix-go, built by run.sh).
GO_PLUGIN = "bench-prefix-go"

N_USERS = 10_000
DOMAIN = "bench.local"


def log(msg: str) -> None:
    print(f"[bench {dt.datetime.now(dt.timezone.utc).strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# machine, processes, ports
# --------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine_info() -> dict:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])

    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0].strip()
        except Exception:  # noqa: BLE001 - informational only
            return "n/a"

    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "loadavg_start": loadavg(),
        "git_rev": first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "kamailio": first_line(["kamailio", "-v"]).replace("version: ", ""),
        "sipp": first_line(["sipp", "-v"]).replace("SIPp ", ""),
        "rtpengine": first_line(["rtpengine", "--version"]),
    }


def free_udp_port(ip: str) -> int:
    """A UDP port that is free on `ip` right now (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def group_pids(pgid: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] = state (field 3); pgrp is field 5 -> index 2
        if int(fields[2]) == pgid:
            pids.append(int(d))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in the group (all threads)."""
    total = 0
    for pid in group_pids(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def group_pss_kb(pgid: int) -> int:
    """Proportional set size of the group (shared memory counted once)."""
    total = 0
    for pid in group_pids(pgid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


LIVE: list["Proc"] = []  # every child still running, stopped on exit or signal


def stop_all() -> None:
    for proc in list(LIVE):
        proc.stop(grace=2.0)


def on_signal(signum, _frame) -> None:
    log(f"signal {signum}: stopping every process this harness started")
    stop_all()
    raise SystemExit(128 + signum)


class Proc:
    """A child started in its own process group, stopped by its pgid only."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log_file = open(log_path, "w")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.p = subprocess.Popen(
            argv,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
        self.pgid = self.p.pid
        LIVE.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 5.0) -> None:
        if self in LIVE:
            LIVE.remove(self)
        if self.log_file.closed:
            return
        if self.alive():
            try:
                os.killpg(self.pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(grace) is None:
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(5)
        else:
            # reap leftovers of the group (e.g. kamailio children)
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log_file.close()

    def tail(self, n: int = 5) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])


# --------------------------------------------------------------------------
# SIPp
# --------------------------------------------------------------------------


def parse_sipp_stat(path: Path) -> dict:
    """Last cumulative row of a `-trace_stat` CSV plus creation timing."""
    try:
        rows = list(csv.reader(path.open(), delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    head = rows[0]
    recs = [dict(zip(head, r)) for r in rows[1:] if len(r) >= len(head) - 1]
    if not recs:
        return {}

    def num(rec: dict, key: str) -> float:
        try:
            return float(rec.get(key, "0") or 0)
        except ValueError:
            return 0.0

    def epoch(rec: dict, key: str) -> float:
        # "2026-11-23\t09:00:08.939172\t1795424408.939172"
        return float(rec[key].split("\t")[-1])

    last = recs[-1]
    out = {k: num(last, k) for k in (
        "TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)",
        "IncomingCall(C)", "OutgoingCall(C)", "FailedUnexpectedMessage(C)",
        "FailedMaxUDPRetrans(C)", "FailedTimeoutOnRecv(C)", "FailedRegexpDoesntMatch(C)",
        "DeadCallMsgs(C)", "OutOfCallMsgs(C)",
    )}
    out["max_current_calls"] = max(num(r, "CurrentCall") for r in recs)
    # time at which the last call was created, interpolated between dumps
    start = epoch(last, "StartTime")
    total = out["TotalCallCreated"]
    created_at = epoch(last, "CurrentTime") - start
    prev_t, prev_n = 0.0, 0.0
    for r in recs:
        t, n = epoch(r, "CurrentTime") - start, num(r, "TotalCallCreated")
        if n >= total and total > 0:
            created_at = prev_t + (t - prev_t) * ((total - prev_n) / max(n - prev_n, 1e-9))
            break
        prev_t, prev_n = t, n
    out["creation_seconds"] = max(created_at, 1e-3)
    out["elapsed_seconds"] = epoch(last, "CurrentTime") - start
    return out


def sipp(role: str, scenario: Path, local_ip: str, local_port: int, remote: str | None, stat: Path,
         extra: list[str], timeout_s: int, hold_ms: int = 0) -> list[str]:
    # a message that does not come within recv_timeout fails the call; held
    # calls wait hold_ms for their BYE
    recv_timeout = 8000 + hold_ms
    argv = [
        "sipp", "-sf", str(scenario), "-i", local_ip, "-p", str(local_port),
        "-trace_stat", "-stf", str(stat), "-fd", "1", "-nostdin",
        "-timeout", f"{timeout_s}s", "-timeout_error",
        "-buff_size", "4194304", "-recv_timeout", str(recv_timeout),
        "-trace_err", "-error_file", str(stat.with_suffix(".err.log")),
    ] + extra
    if remote:
        argv.append(remote)
    return argv


# --------------------------------------------------------------------------
# systems under test
# --------------------------------------------------------------------------


def sip_ping(ip: str, port: int, timeout: float = 0.5) -> bool:
    """True when something on ip:port answers an OPTIONS with any SIP response."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((UAC_IP, 0))
        lport = s.getsockname()[1]
        branch = f"z9hG4bK-ping-{time.monotonic_ns()}"
        msg = (f"OPTIONS sip:ping@{ip}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {UAC_IP}:{lport};branch={branch};rport\r\n"
               f"From: <sip:bench@{UAC_IP}>;tag=ping\r\nTo: <sip:ping@{ip}>\r\n"
               f"Call-ID: {branch}@bench\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
               f"Content-Length: 0\r\n\r\n").encode()
        s.settimeout(timeout)
        try:
            s.sendto(msg, (ip, port))
            data, _ = s.recvfrom(65535)
            return data.startswith(b"SIP/2.0 ")
        except OSError:
            return False


class System:
    """A SIP system under test listening on SUT_IP:port."""

    key = "?"
    label = "?"

    def __init__(self, ctx: "Ctx"):
        self.ctx = ctx
        self.proc: Proc | None = None
        self.port = 0
        self.error: str | None = None

    # returns the address SIPp's UAC sends to, or None when start failed
    def start(self, part: str, uas_port: int, uac_port: int, workdir: Path) -> str | None:
        raise NotImplementedError

    def pgid(self) -> int | None:
        return self.proc.pgid if self.proc else None

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def wait_listening(self, timeout: float = 30.0) -> bool:
        """Ready = answers an OPTIONS on its port (any response code)."""
        assert self.proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                self.error = f"exited with {self.proc.p.returncode}: {self.proc.tail()}"
                return False
            if sip_ping(SUT_IP, self.port):
                return True
            time.sleep(0.2)
        self.error = f"not listening after {timeout:.0f} s: {self.proc.tail()}"
        return False


class SippDirect(System):
    key = "sipp-direct"
    label = "SIPp direct (ceiling)"

    def start(self, part, uas_port, uac_port, workdir):
        return f"{UAS_IP}:{uas_port}"


class Kamailio(System):
    def __init__(self, ctx, key, label, cfg, lua=False):
        super().__init__(ctx)
        self.key, self.label, self.cfg, self.lua = key, label, cfg, lua

    def start(self, part, uas_port, uac_port, workdir):
        self.port = free_udp_port(SUT_IP)
        rundir = workdir / f"{self.key}-run"
        rundir.mkdir(exist_ok=True)
        env = {"BENCH_UAS": f"sip:{UAS_IP}:{uas_port}", "BENCH_LUA": str(KAM_DIR / "proxy.lua")}
        if part == "registrations":
            env["BENCH_DBURL"] = f"text://{self.ctx.kam_db_dir}"
        argv = [
            "kamailio", "-DD", "-E", "-f", str(KAM_DIR / self.cfg),
            "-n", str(self.ctx.workers), "-m", "512", "-M", "32",
            "-l", f"udp:{SUT_IP}:{self.port}", "-Y", str(rundir),
        ]
        self.proc = Proc(self.key, argv, workdir / f"{self.key}-{part}.log", env=env)
        if not self.wait_listening(20):
            self.stop()
            return None
        time.sleep(1.0)  # children finish forking after the banner
        return f"{SUT_IP}:{self.port}"


class Strowger(System):
    def __init__(self, ctx, key, label, route_plugin):
        super().__init__(ctx)
        self.key, self.label, self.route_plugin = key, label, route_plugin

    def config(self, part, uas_port, uac_port, workdir) -> str:
        lines = [
            "# generated by benches/harness/bench.py",
            "[sip]",
            f'listen = ["udp:{SUT_IP}:{self.port}"]',
            f'domain = "{DOMAIN}"',
            "",
            "[store]",
            f'path = "{workdir / (self.key + "-" + part + ".db")}"',
            "",
            "[plugins]",
            f'dir = "{self.ctx.plugin_dir}"',
            "",
            "[auth]",
            'algorithms = ["md5"]  # SIPp 3.6 answers MD5 digest only',
            "",
            "[protection]",
            "# Kamailio runs without pike/ratelimit here: compare like with like",
            "# (all SIPp users share one source address)",
            "rate_limit = 0",
            "",
            "[media]",
            "# signalling against a SIP proxy: no RTP anchoring (the relay is",
            "# compared with rtpengine in the media part; its default port range",
            "# 20000-30000 holds 2,500 relayed calls, below the 3,000 held here)",
            "enabled = false",
            "",
        ]
        if part == "registrations":
            for user, pw in self.ctx.users:
                lines += ["[[users]]", f'user = "{user}"', f'password = "{pw}"', ""]
        else:
            lines += [
                "[[trunks]]",
                'name = "bench-uac"',
                f'host = "{UAC_IP}"',
                f"port = {uac_port}",
                'transport = "udp"',
                'inbound = "ip"',
                "ignore_source_port = true",
                "",
                "[[trunks]]",
                'name = "bench-uas"',
                f'host = "{UAS_IP}"',
                f"port = {uas_port}",
                'transport = "udp"',
                'inbound = "none"',
                "",
                "[[bindings]]",
                'hook = "route"',
                f'plugin = "{self.route_plugin}"',
                f'config_file = "{self.ctx.route_config_path(self.route_plugin)}"',
                'scope = "global"',
                "deadline_ms = 20",
                'fallback = { reject = { code = 503, reason = "Routing unavailable" } }',
                "",
            ]
        return "\n".join(lines)

    def start(self, part, uas_port, uac_port, workdir):
        binary = self.ctx.strowger_bin
        if not binary.exists():
            self.error = f"{binary} not built"
            return None
        if part != "registrations" and not (self.ctx.plugin_dir / f"{self.route_plugin}.wasm").exists():
            self.error = f"plugin {self.route_plugin}.wasm not in {self.ctx.plugin_dir}"
            return None
        self.port = free_udp_port(SUT_IP)
        cfg = workdir / f"{self.key}-{part}.toml"
        cfg.write_text(self.config(part, uas_port, uac_port, workdir))
        env = {
            "TOKIO_WORKER_THREADS": str(self.ctx.workers),
            "STROWGER_LOG": os.environ.get("BENCH_STROWGER_LOG", "warn"),
            "STROWGER_PLUGIN_DIR": str(self.ctx.plugin_dir),
        }
        argv = [str(binary), "serve", "--config", str(cfg)]
        self.proc = Proc(self.key, argv, workdir / f"{self.key}-{part}.log", env=env)
        if not self.wait_listening(60):
            self.stop()
            return None
        time.sleep(0.5)
        return f"{SUT_IP}:{self.port}"


# --------------------------------------------------------------------------
# context and steps
# --------------------------------------------------------------------------


class Ctx:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.workers = args.workers
        self.repeats = args.repeats or (1 if args.smoke else 3)
        self.duration = args.duration or (2 if args.smoke else 10)
        self.strowger_bin = Path(args.strowger_bin)
        self.plugin_dir = Path(args.plugin_dir)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.stamp = stamp + ("-smoke" if args.smoke else "")
        self.results_dir = Path(args.results_dir)
        self.raw = self.results_dir / self.stamp
        self.raw.mkdir(parents=True, exist_ok=True)
        self.users = [(f"u{100000 + i}", f"pw{100000 + i}x") for i in range(N_USERS)]
        self.kam_db_dir = self.raw / "kamailio-db"
        self.seq = 0

    def route_config_path(self, plugin: str) -> Path:
        return self.raw / f"{plugin}.json"

    def next_dir(self, name: str) -> Path:
        self.seq += 1
        d = self.raw / f"{self.seq:03d}-{name}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_fixtures(self) -> None:
        # SIPp injection file: same 10,000 users for every registrar
        with open(self.raw / "users.csv", "w") as f:
            f.write("SEQUENTIAL\n")
            for u, p in self.users:
                f.write(f"{u};[authentication username={u} password={p}]\n")
        # Kamailio: db_text table loaded into an htable at start-up
        self.kam_db_dir.mkdir(exist_ok=True)
        with open(self.kam_db_dir / "users", "w") as f:
            f.write("key_name(string) key_type(int) value_type(int) key_value(string) expires(int)\n")
            for u, p in self.users:
                f.write(f"{u}:0:0:{p}:0\n")
        (self.kam_db_dir / "version").write_text("table_name(string) table_version(int)\nusers:2\n")
        # Strowger routing plugins: 90 -> 91 prefix rewrite, to the UAS trunk
        self.route_config_path("route-table").write_text(json.dumps(route_table_config(), indent=2) + "\n")
        self.route_config_path(GO_PLUGIN).write_text(
            json.dumps({"from": "90", "to": "91", "trunk": "bench-uas"}, indent=2) + "\n")


def route_table_config() -> dict:
    """route-table plugin config (format: guest-examples/rust/route-table):
    calls from the UAC trunk dialling 90… go to trunk `bench-uas` as 91…
    (Asterisk pattern `_90.`, `91${EXTEN:2}` like `Dial(SIP/91${EXTEN:2}@…)`)."""
    return {
        "no_route": {"code": 404, "reason": "No route"},
        "routes": [
            {
                "name": "bench-90-to-91",
                "priority": 0,
                "source": ["trunk:bench-uac"],
                "b": ["_90."],
                "b_rewrite": "91${EXTEN:2}",
                "destination": {"trunk": "bench-uas"},
            }
        ],
    }


def run_call_step(ctx: Ctx, system: System, target: str, uas_port: int, uac_port: int, rate: int,
                  duration: float, hold_ms: int, name: str, sample_mem: bool = False,
                  perf_out: Path | None = None) -> dict:
    d = ctx.next_dir(name)
    calls = max(int(rate * duration), 1)
    prefix = "91" if isinstance(system, SippDirect) else "90"
    limit = max(int(rate * (hold_ms / 1000.0 + 3)), 50)
    bound = int(duration + hold_ms / 1000.0 + 30)
    # the UAS runs until the UAC is done (no -m: a stray message must not end it early)
    uas = Proc("uas", sipp("uas", SIPP_DIR / "call-uas.xml", UAS_IP, uas_port, None, d / "uas.csv",
                           [], bound + 10, hold_ms), d / "uas.log")
    time.sleep(0.3)
    pgid = system.pgid()
    cpu0 = group_cpu_seconds(pgid) if pgid else 0.0
    mem0 = group_pss_kb(pgid) if (pgid and sample_mem) else 0
    load0 = loadavg()
    perf = None
    if perf_out and pgid:
        pids = ",".join(str(x) for x in group_pids(pgid))  # every Kamailio child, all Strowger threads
        perf = Proc("perf", ["perf", "record", "-F", "499", "-g", "-o", str(perf_out), "-p", pids],
                    d / "perf.log")
    t0 = time.monotonic()
    uac = Proc("uac", sipp("uac", SIPP_DIR / "call-uac.xml", UAC_IP, uac_port, target, d / "uac.csv",
                           ["-key", "prefix", prefix, "-r", str(rate), "-m", str(calls), "-l", str(limit),
                            "-d", str(hold_ms)], bound, hold_ms), d / "uac.log")
    mem_peak = mem0
    while uac.alive():
        if sample_mem and pgid:
            mem_peak = max(mem_peak, group_pss_kb(pgid))
        uac.wait(1.0)
        if time.monotonic() - t0 > bound + 15:
            break
    wall = time.monotonic() - t0
    cpu1 = group_cpu_seconds(pgid) if pgid else 0.0
    if perf:
        perf.p.send_signal(signal.SIGINT)
        perf.wait(20)
        perf.stop()
    uac.stop()
    time.sleep(2.5)  # UAS: last ACK/BYE exchanges and its 1 s statistics dump
    uas.stop()
    s_uac = parse_sipp_stat(d / "uac.csv")
    s_uas = parse_sipp_stat(d / "uas.csv")
    return step_result(ctx, rate, calls, s_uac, s_uas, wall, cpu1 - cpu0, bool(pgid), load0,
                       mem0=mem0, mem_peak=mem_peak, dir=d)


def step_result(ctx, rate, calls, s_uac, s_uas, wall, cpu, have_cpu, load0, mem0=0, mem_peak=0, dir=None) -> dict:
    created = s_uac.get("TotalCallCreated", 0)
    ok = s_uac.get("SuccessfulCall(C)", 0)
    failed = s_uac.get("FailedCall(C)", 0)
    unfinished = max(created - ok - failed, 0)
    retrans = s_uac.get("Retransmissions(C)", 0) + s_uas.get("Retransmissions(C)", 0)
    achieved = created / s_uac["creation_seconds"] if s_uac else 0.0
    bad = failed + unfinished + (calls - created)
    reasons = []
    if not s_uac:
        reasons.append("no SIPp statistics")
    if bad > MAX_FAILED_RATIO * calls:
        reasons.append(f"{int(bad)} failed/unfinished of {calls}")
    if retrans > MAX_RETRANS_RATIO * calls:
        reasons.append(f"{int(retrans)} retransmissions")
    if have_cpu and cpu < 0:
        reasons.append("system processes exited during the step")
    if achieved < MIN_ACHIEVED_RATIO * rate:
        reasons.append(f"achieved {achieved:.0f}/s")
    res = {
        "rate": rate,
        "calls": calls,
        "created": int(created),
        "successful": int(ok),
        "failed": int(failed),
        "unfinished": int(unfinished),
        "retransmissions": int(retrans),
        "achieved_rate": round(achieved, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3) if have_cpu else None,  # group CPU over the step
        "cpu_s_per_1000": round(cpu / ok * 1000, 4) if (have_cpu and ok) else None,
        "max_concurrent": int(s_uac.get("max_current_calls", 0)) if s_uac else 0,
        "loadavg": load0,
        "passed": not reasons,
        "why": "; ".join(reasons),
        "raw": str(dir.relative_to(ctx.results_dir)) if dir else None,
    }
    if mem_peak:
        res["pss_kb_before"] = mem0
        res["pss_kb_peak"] = mem_peak
    return res


def run_register_step(ctx: Ctx, system: System, target: str, uac_port: int, rate: int, duration: float,
                      name: str) -> dict:
    d = ctx.next_dir(name)
    calls = max(int(rate * duration), 1)
    bound = int(duration + 30)
    pgid = system.pgid()
    cpu0 = group_cpu_seconds(pgid) if pgid else 0.0
    load0 = loadavg()
    t0 = time.monotonic()
    uac = Proc("reg", sipp("uac", SIPP_DIR / "register.xml", UAC_IP, uac_port, target, d / "uac.csv",
                           ["-key", "domain", DOMAIN, "-inf", str(ctx.raw / "users.csv"),
                            "-r", str(rate), "-m", str(calls), "-l", str(max(rate * 3, 50))], bound),
               d / "uac.log")
    uac.wait(bound + 15)
    wall = time.monotonic() - t0
    cpu1 = group_cpu_seconds(pgid) if pgid else 0.0
    uac.stop()
    s = parse_sipp_stat(d / "uac.csv")
    return step_result(ctx, rate, calls, s, {}, wall, cpu1 - cpu0, bool(pgid), load0, dir=d)


def median_or_none(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 4) if xs else None


def stepping(ctx: Ctx, system: System, part: str, rates: list[int], one_step) -> dict:
    """Runs the rates in order, each `repeats` times; a rate passes when the
    majority of its repeats pass; stops at the first failing rate."""
    steps = []
    best = None
    for rate in rates:
        reps = []
        for rep in range(ctx.repeats):
            r = one_step(rate, rep)
            reps.append(r)
            log(f"  {system.key} {part} {rate}/s #{rep + 1}: "
                f"{'pass' if r['passed'] else 'FAIL'} ok={r['successful']}/{r['calls']} "
                f"retrans={r['retransmissions']} achieved={r['achieved_rate']} "
                f"cpu/1000={r['cpu_s_per_1000']} {r['why']}")
            passes = sum(1 for x in reps if x["passed"])
            if ctx.repeats - len(reps) + passes < (ctx.repeats // 2 + 1):
                break  # majority can no longer pass
        passes = sum(1 for x in reps if x["passed"])
        passed = passes >= ctx.repeats // 2 + 1
        step = {
            "rate": rate,
            "passed": passed,
            "repeats": reps,
            "median_cpu_s_per_1000": median_or_none([x["cpu_s_per_1000"] for x in reps if x["passed"]]),
            "median_achieved_rate": median_or_none([x["achieved_rate"] for x in reps]),
        }
        steps.append(step)
        if not passed:
            break
        best = step
    return {
        "max_rate": best["rate"] if best else 0,
        "cpu_s_per_1000": best["median_cpu_s_per_1000"] if best else None,
        "steps": steps,
        "capped_by_steps": bool(best and best is steps[-1] and best["rate"] == rates[-1]),
    }


def call_systems(ctx: Ctx) -> list[System]:
    systems: list[System] = [
        SippDirect(ctx),
        Kamailio(ctx, "kamailio-native", "Kamailio 5.6 native cfg", "proxy-native.cfg"),
        Kamailio(ctx, "kamailio-lua", "Kamailio 5.6 KEMI Lua", "proxy-lua.cfg", lua=True),
        Strowger(ctx, "strowger-rust", "Strowger + route-table (Rust)", "route-table"),
    ]
    systems.append(Strowger(ctx, "strowger-go", f"Strowger + {GO_PLUGIN} (Go)", GO_PLUGIN))
    return [s for s in systems if not ctx.args.systems or s.key in ctx.args.systems]


def part_calls(ctx: Ctx) -> dict:
    rates = ctx.args.rates or ([100] if ctx.smoke else [200, 400, 800, 1200, 1600, 2400, 3200])
    out = {}
    for system in call_systems(ctx):
        log(f"calls: {system.label}")
        uas_port, uac_port = free_udp_port(UAS_IP), free_udp_port(UAC_IP)
        target = system.start("calls", uas_port, uac_port, ctx.raw)
        if not target:
            log(f"  {system.key} did not start: {system.error}")
            out[system.key] = {"label": system.label, "error": system.error, "max_rate": 0}
            continue
        try:
            warm = run_call_step(ctx, system, target, uas_port, uac_port, WARMUP_RATE, WARMUP_S, 0,
                                 f"calls-{system.key}-warmup")
            log(f"  {system.key} warm-up: {'ok' if warm['passed'] else 'not clean: ' + warm['why']}")
            res = stepping(ctx, system, "calls", rates, lambda rate, rep: run_call_step(
                ctx, system, target, uas_port, uac_port, rate, ctx.duration, 0,
                f"calls-{system.key}-{rate}-{rep + 1}"))
            if ctx.args.profile and isinstance(system, Strowger) and shutil.which("perf"):
                rate = res["max_rate"] or rates[0]
                perf_data = ctx.raw / f"perf-{system.key}.data"
                run_call_step(ctx, system, target, uas_port, uac_port, rate, ctx.duration, 0,
                              f"calls-{system.key}-{rate}-profile", perf_out=perf_data)
                res["profile"] = perf_report(ctx, system.key, perf_data)
        finally:
            system.stop()
        res["label"] = system.label
        out[system.key] = res
    return out


def perf_report(ctx: Ctx, key: str, data: Path) -> str | None:
    if not data.exists():
        return None
    txt = ctx.results_dir / f"{ctx.stamp}-profile-{key}.txt"
    with open(txt, "w") as f:
        subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                        "--percent-limit", "0.5", "-g", "none", "--sort", "dso,symbol"],
                       stdout=f, stderr=subprocess.DEVNULL, timeout=300)
    return txt.name


def part_registrations(ctx: Ctx) -> dict:
    rates = ctx.args.reg_rates or ([100] if ctx.smoke else [250, 500, 1000, 1500, 2000, 3000, 4000])
    systems: list[System] = [
        Kamailio(ctx, "kamailio-registrar", "Kamailio 5.6 registrar + auth", "registrar.cfg"),
        Strowger(ctx, "strowger", "Strowger registrar", "route-table"),
    ]
    out = {}
    for system in systems:
        log(f"registrations: {system.label}")
        uac_port = free_udp_port(UAC_IP)
        target = system.start("registrations", 0, uac_port, ctx.raw)
        if not target:
            log(f"  {system.key} did not start: {system.error}")
            out[system.key] = {"label": system.label, "error": system.error, "max_rate": 0}
            continue
        try:
            warm = run_register_step(ctx, system, target, uac_port, WARMUP_RATE, WARMUP_S,
                                     f"reg-{system.key}-warmup")
            log(f"  {system.key} warm-up: {'ok' if warm['passed'] else 'not clean: ' + warm['why']}")
            res = stepping(ctx, system, "registrations", rates, lambda rate, rep: run_register_step(
                ctx, system, target, uac_port, rate, ctx.duration, f"reg-{system.key}-{rate}-{rep + 1}"))
        finally:
            system.stop()
        res["label"] = system.label
        out[system.key] = res
    return out


def part_concurrent(ctx: Ctx) -> dict:
    """Calls held `hold_s` at a fixed rate; memory per held call. Each repeat
    starts the system afresh, so that memory an allocator keeps after the
    previous repeat does not hide the growth."""
    rate = ctx.args.hold_rate or (20 if ctx.smoke else 100)
    hold_s = 2 if ctx.smoke else 30
    duration = hold_s + (2 if ctx.smoke else 10)  # reach the plateau, stay a while
    out = {}
    for system in call_systems(ctx):
        if isinstance(system, SippDirect):
            continue
        log(f"concurrent: {system.label} ({rate}/s held {hold_s} s)")
        reps = []
        for rep in range(1 if ctx.smoke else ctx.repeats):
            uas_port, uac_port = free_udp_port(UAS_IP), free_udp_port(UAC_IP)
            target = system.start("concurrent", uas_port, uac_port, ctx.raw)
            if not target:
                break
            try:
                time.sleep(1.0)  # settle before the baseline sample
                r = run_call_step(ctx, system, target, uas_port, uac_port, rate, duration, hold_s * 1000,
                                  f"hold-{system.key}-{rep + 1}", sample_mem=True)
            finally:
                system.stop()
            conc = r["max_concurrent"]
            r["kb_per_call"] = round((r["pss_kb_peak"] - r["pss_kb_before"]) / conc, 3) if conc else None
            log(f"  {system.key} #{rep + 1}: {'pass' if r['passed'] else 'FAIL'} concurrent={conc} "
                f"pss {r['pss_kb_before']}->{r['pss_kb_peak']} kB, {r['kb_per_call']} kB/call {r['why']}")
            reps.append(r)
        if not reps:
            out[system.key] = {"label": system.label, "error": system.error}
            continue
        out[system.key] = {
            "label": system.label,
            "rate": rate,
            "hold_s": hold_s,
            "max_concurrent": int(statistics.median([r["max_concurrent"] for r in reps])),
            "kb_per_call": median_or_none([r["kb_per_call"] for r in reps if r["passed"]]),
            "pss_mb_before": round(statistics.median([r["pss_kb_before"] for r in reps]) / 1024, 1),
            "pss_mb_peak": round(statistics.median([r["pss_kb_peak"] for r in reps]) / 1024, 1),
            "passed": all(r["passed"] for r in reps),
            "repeats": reps,
        }
    return out


def part_media(ctx: Ctx) -> dict:
    """benches/media/run.sh (the media work's relay benchmark: Strowger's
    relay vs rtpengine userspace over the ng protocol). It prints
    `results: <file>.md` and writes the JSON next to it."""
    script = BENCHES / "media" / "run.sh"
    if not script.exists():
        return {"error": "benches/media/run.sh not present"}
    d = ctx.next_dir("media")
    argv = ["bash", str(script), "--workers", str(ctx.workers)] + (["--smoke"] if ctx.smoke else [])
    log("media: " + " ".join(argv))
    try:
        p = subprocess.run(argv, capture_output=True, text=True, cwd=str(ROOT),
                           timeout=600 if ctx.smoke else 2400)
    except subprocess.TimeoutExpired:
        return {"error": "benches/media/run.sh timed out"}
    (d / "stdout.log").write_text(p.stdout)
    (d / "stderr.log").write_text(p.stderr)
    res: dict = {"exit": p.returncode}
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("results: "):
            md = (ROOT / line.split(" ", 1)[1].strip()).resolve()
            res["report_md"] = str(md)
            try:
                res["table_md"] = md.read_text()
                res["json"] = json.loads(md.with_suffix(".json").read_text())
            except (OSError, ValueError) as e:
                res["json_error"] = str(e)
            break
    if "table_md" not in res:
        res["stdout_tail"] = p.stdout.strip().splitlines()[-30:]
    if p.returncode != 0:
        res["error"] = f"exit {p.returncode}: " + " | ".join(p.stderr.strip().splitlines()[-3:])
    # per relay: largest stream count under 0.1 % loss and CPU per packet there
    for run in (res.get("json") or {}).get("runs", []):
        n = run.get("max_streams_under_0_1pct", 0)
        at = next((st for st in run.get("steps", []) if st.get("streams") == n), {})
        key = "strowger" if "strowger" in run.get("relay", "").lower() else run.get("relay", "?")
        res[key] = {"label": f"{run.get('relay')} {run.get('version', '')}".strip(), "max_streams": n,
                    "us_cpu_per_packet": at.get("relay_us_per_packet")}
    return res


CRITERION_RE = re.compile(
    r"^(?P<name>\S.*?)?\s*time:\s+\[(?P<lo>[\d.]+)\s*(?P<lou>\S+)\s+(?P<mid>[\d.]+)\s*(?P<midu>\S+)\s+"
    r"(?P<hi>[\d.]+)\s*(?P<hiu>\S+)\]")
UNIT_NS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def parse_criterion(text: str) -> dict:
    """`name time: [low median high]` lines of criterion's stdout (a long
    name is printed alone on the line before its `time:` line)."""
    out = {}
    prev = ""
    for line in text.splitlines():
        m = CRITERION_RE.match(line.strip()) if "time:" in line else None
        if m:
            name = (m.group("name") or "").strip() or prev
            out[name] = {
                "median_ns": round(float(m.group("mid")) * UNIT_NS.get(m.group("midu"), float("nan")), 3),
                "low_ns": round(float(m.group("lo")) * UNIT_NS.get(m.group("lou"), float("nan")), 3),
                "high_ns": round(float(m.group("hi")) * UNIT_NS.get(m.group("hiu"), float("nan")), 3),
            }
        prev = line.strip() if (line.strip() and not line.startswith(" ")) else ""
    return out


def part_decisions(ctx: Ctx) -> dict:
    out = {}
    crit_args = (["--warm-up-time", "0.3", "--measurement-time", "1", "--sample-size", "10"]
                 if ctx.smoke else ["--warm-up-time", "2", "--measurement-time", "5"])
    # `--workspace --bench NAME`, not `-p CRATE`: -p unifies features differently
    # and rebuilds wasmtime (minutes) instead of reusing the workspace build
    for crate, path, bench in (("strowger-plugin", "host/plugin", "decisions"),
                               ("strowger-sip", "host/sip", "parse")):
        if not list((ROOT / path / "benches").glob("*.rs")):
            out[crate] = {"error": f"{path}/benches/ has no benchmarks yet"}
            continue
        d = ctx.next_dir(f"criterion-{crate}")
        log(f"decisions: cargo bench --workspace --bench {bench}")
        env = dict(os.environ, STROWGER_PLUGIN_DIR=str(ctx.plugin_dir))
        try:
            p = subprocess.run(["cargo", "bench", "--workspace", "--bench", bench, "--", *crit_args],
                               capture_output=True,
                               text=True, cwd=str(ROOT), env=env, timeout=3600)
        except subprocess.TimeoutExpired:
            out[crate] = {"error": "cargo bench timed out"}
            continue
        (d / "stdout.log").write_text(p.stdout)
        (d / "stderr.log").write_text(p.stderr)
        res = {"benches": parse_criterion(p.stdout)}
        if p.returncode != 0:
            res["error"] = f"cargo bench exit {p.returncode}: " + " | ".join(p.stderr.strip().splitlines()[-3:])
        out[crate] = res
    return out


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def fmt(x, nd=2):
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def figure_row(figure: str, unit: str, higher_is_better: bool, part: dict, skey: str, others: list[str],
               field: str, ceiling: str | None = None) -> dict:
    """Strowger's value, the best other system's value and their ratio."""
    sval = part.get(skey, {}).get(field) or None
    cands = [(k, part[k].get(field)) for k in others if isinstance(part.get(k), dict) and part[k].get(field)]
    best_key, best = None, None
    if cands:
        best_key, best = (max if higher_is_better else min)(cands, key=lambda kv: kv[1])
    return {
        "figure": figure,
        "unit": unit,
        "better": "higher" if higher_is_better else "lower",
        "strowger_system": skey,
        "strowger": sval,
        "best_other_system": best_key,
        "best_other": best,
        "ratio": round(sval / best, 3) if (sval and best) else None,
        "ceiling": part.get(ceiling, {}).get(field) if ceiling else None,
        "values": {k: v.get(field) for k, v in part.items() if isinstance(v, dict)},
        "strowger_error": part.get(skey, {}).get("error"),
    }


def build_summary(res: dict) -> list[dict]:
    """One row per figure and Strowger variant: Strowger / best other."""
    rows = []
    calls = res.get("calls") or {}
    if isinstance(calls, dict) and "error" not in calls:
        others = [k for k in calls if k.startswith("kamailio")]
        for skey in [k for k in calls if k.startswith("strowger")]:
            rows.append(figure_row("calls: max sustained rate", "calls/s", True, calls, skey, others,
                                   "max_rate", "sipp-direct"))
            rows.append(figure_row("calls: CPU seconds per 1000 calls", "s", False, calls, skey, others,
                                   "cpu_s_per_1000"))
    regs = res.get("registrations") or {}
    if isinstance(regs, dict) and "error" not in regs:
        others = [k for k in regs if not k.startswith("strowger")]
        rows.append(figure_row("registrations: max sustained rate", "REGISTER/s", True, regs, "strowger", others,
                               "max_rate"))
        rows.append(figure_row("registrations: CPU seconds per 1000", "s", False, regs, "strowger", others,
                               "cpu_s_per_1000"))
    media = res.get("media") or {}
    if isinstance(media, dict) and "strowger" in media:
        others = [k for k, v in media.items() if isinstance(v, dict) and "max_streams" in v and k != "strowger"]
        rows.append(figure_row("media: streams relayed with < 0.1 % loss", "streams", True, media, "strowger",
                               others, "max_streams"))
        rows.append(figure_row("media: µs CPU per relayed packet (at that N)", "µs", False, media, "strowger",
                               others, "us_cpu_per_packet"))
    conc = res.get("concurrent") or {}
    if isinstance(conc, dict) and "error" not in conc:
        others = [k for k in conc if k.startswith("kamailio")]
        for skey in [k for k in conc if k.startswith("strowger")]:
            rows.append(figure_row("concurrent: kB per held call", "kB", False, conc, skey, others, "kb_per_call"))
    return rows


def render_md(res: dict) -> str:
    m = res["machine"]
    o = []
    o.append(f"# Strowger benchmark {res['stamp']}{' (smoke: tiny counts, no thresholds meaningful)' if res['smoke'] else ''}")
    o.append("")
    o.append(f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['mem_gib']} GiB, kernel {m['kernel']}; "
             f"load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}. "
             f"git {m['git_rev']}; {m['kamailio']}; SIPp {m['sipp']}.")
    o.append(f"Method: step duration {res['params']['duration_s']} s, {res['params']['repeats']} repeat(s) per step "
             f"(median), {res['params']['workers']} workers per system, pass = < 0.1 % failed calls, "
             f"retransmissions ≤ 1 % of calls, ≥ 95 % of the target rate achieved. "
             f"Everything on 127.0.0.x; SIPp shares the cores with the system under test.")
    o.append("")
    rows = build_summary(res)
    if rows:
        o.append("## Summary (ratio = Strowger / best other; > 1 is better for 'higher', < 1 for 'lower')")
        o.append("")
        o.append("| figure | better | Strowger | value | best other | value | ratio | SIPp ceiling |")
        o.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            o.append(f"| {r['figure']} | {r['better']} | {r['strowger_system']} | "
                     f"{'did not run' if r['strowger_error'] else fmt(r['strowger'])} | "
                     f"{r['best_other_system'] or '—'} | {fmt(r['best_other'])} | {fmt(r['ratio'], 3)} | "
                     f"{fmt(r['ceiling'])} |")
        o.append("")

    calls = res.get("calls")
    if calls:
        o.append("## Call rate (INVITE, 200, ACK, immediate BYE; UAC dials 90…, UAS requires 91…)")
        o.append("")
        o.append("| system | max sustained cps | CPU s / 1000 calls | steps (rate: result) | note |")
        o.append("|---|---|---|---|---|")
        for k, v in calls.items():
            steps = ", ".join(f"{s['rate']}:{'ok' if s['passed'] else 'fail'}" for s in v.get("steps", []))
            note = v.get("error") or ""
            if v.get("capped_by_steps"):
                note += " highest step passed (real ceiling is higher)"
            last = (v.get("steps") or [{}])[-1]
            if last and not last.get("passed") and last.get("repeats"):
                note += f" first failing step: {last['repeats'][-1]['why']}"
            if v.get("profile"):
                note += f" profile: {v['profile']}"
            o.append(f"| {v.get('label', k)} | {v.get('max_rate', 0)} | {fmt(v.get('cpu_s_per_1000'), 3)} | {steps} | {note.strip()} |")
        o.append("")
    regs = res.get("registrations")
    if regs:
        o.append(f"## Registrations (REGISTER, 401, REGISTER with MD5 digest, 200; {N_USERS} users)")
        o.append("")
        o.append("| system | max sustained REGISTER/s | CPU s / 1000 | steps | note |")
        o.append("|---|---|---|---|---|")
        for k, v in regs.items():
            steps = ", ".join(f"{s['rate']}:{'ok' if s['passed'] else 'fail'}" for s in v.get("steps", []))
            note = v.get("error") or ""
            if v.get("capped_by_steps"):
                note += " highest step passed"
            last = (v.get("steps") or [{}])[-1]
            if last and not last.get("passed") and last.get("repeats"):
                note += f" first failing step: {last['repeats'][-1]['why']}"
            o.append(f"| {v.get('label', k)} | {v.get('max_rate', 0)} | {fmt(v.get('cpu_s_per_1000'), 3)} | {steps} | {note.strip()} |")
        o.append("")
    conc = res.get("concurrent")
    if conc:
        o.append("## Concurrent calls (fixed rate, calls held, memory = PSS of the process group)")
        o.append("")
        o.append("| system | rate | hold s | peak concurrent | PSS MB before → peak | kB per call | all calls ok | note |")
        o.append("|---|---|---|---|---|---|---|---|")
        for k, v in conc.items():
            note = v.get("error") or "; ".join(r["why"] for r in v.get("repeats", []) if r["why"])
            o.append(f"| {v.get('label', k)} | {v.get('rate', '—')} | {v.get('hold_s', '—')} | {v.get('max_concurrent', '—')} | "
                     f"{fmt(v.get('pss_mb_before'), 1)} → {fmt(v.get('pss_mb_peak'), 1)} | {fmt(v.get('kb_per_call'), 2)} | "
                     f"{v.get('passed', '—')} | {note} |")
        o.append("")
    media = res.get("media")
    if media:
        o.append("## Media relay (benches/media/run.sh: Strowger vs rtpengine userspace)")
        o.append("")
        if media.get("error"):
            o.append(f"Not (fully) measured: {media['error']}")
            o.append("")
        if media.get("table_md"):
            o.append(media["table_md"].strip())
            o.append("")
            o.append(f"(from `{Path(media['report_md']).name}`)")
        elif media.get("stdout_tail"):
            o.append("```")
            o.extend(media["stdout_tail"])
            o.append("```")
        o.append("")
    dec = res.get("decisions")
    if dec:
        o.append("## Decisions (criterion micro-benchmarks, median time per iteration)")
        o.append("")
        o.append("| crate | benchmark | median | range |")
        o.append("|---|---|---|---|")
        for crate, v in dec.items():
            if v.get("error") and not v.get("benches"):
                o.append(f"| {crate} | — | — | {v['error']} |")
            for name, b in (v.get("benches") or {}).items():
                o.append(f"| {crate} | {name} | {human_ns(b['median_ns'])} | {human_ns(b['low_ns'])} – {human_ns(b['high_ns'])} |")
        o.append("")
    o.append(f"Raw SIPp statistics and logs: `benches/results/{res['stamp']}/` (not committed).")
    o.append("")
    return "\n".join(o)


def human_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny counts, 1 repeat, < 2 minutes")
    ap.add_argument("--only", default="", help="comma list of parts: " + ",".join(PARTS)
                    + " (default: all; with --smoke all but decisions, whose criterion build is long)")
    ap.add_argument("--systems", default="", help="comma list of system keys for calls/concurrent (default all)")
    ap.add_argument("--rates", default="", help="call rates to step through, comma list")
    ap.add_argument("--reg-rates", default="", help="REGISTER rates to step through, comma list")
    ap.add_argument("--hold-rate", type=int, default=0, help="call rate of the concurrent-calls part")
    ap.add_argument("--duration", type=float, default=0, help="seconds per step")
    ap.add_argument("--repeats", type=int, default=0, help="repeats per step (median)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                    help="Kamailio children (-n) and Strowger TOKIO_WORKER_THREADS")
    ap.add_argument("--profile", action="store_true", help="perf-record one extra call step per Strowger system at its highest passing rate")
    ap.add_argument("--strowger-bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")),
                                                           "release", "strowger"))
    ap.add_argument("--plugin-dir", default=os.environ.get("STROWGER_PLUGIN_DIR", ""))
    ap.add_argument("--results-dir", default=str(BENCHES / "results"))
    args = ap.parse_args()
    if not args.plugin_dir:
        args.plugin_dir = os.path.join(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")), "plugins")
    if not args.only:
        args.only = ",".join(p for p in PARTS if not (args.smoke and p == "decisions"))
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    for p in parts:
        if p not in PARTS:
            ap.error(f"unknown part {p!r}; parts: {', '.join(PARTS)}")
    args.systems = [s for s in args.systems.split(",") if s]
    args.rates = [int(x) for x in args.rates.split(",") if x]
    args.reg_rates = [int(x) for x in args.reg_rates.split(",") if x]

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ctx = Ctx(args)
    ctx.write_fixtures()
    res: dict = {
        "stamp": ctx.stamp,
        "smoke": ctx.smoke,
        "machine": machine_info(),
        "params": {"duration_s": ctx.duration, "repeats": ctx.repeats, "workers": ctx.workers,
                   "max_failed_ratio": MAX_FAILED_RATIO, "max_retrans_ratio": MAX_RETRANS_RATIO,
                   "min_achieved_ratio": MIN_ACHIEVED_RATIO, "parts": parts},
    }
    log(f"results in {ctx.results_dir}/{ctx.stamp}.md; load {res['machine']['loadavg_start']}")
    funcs = {"calls": part_calls, "registrations": part_registrations, "concurrent": part_concurrent,
             "media": part_media, "decisions": part_decisions}
    try:
        for p in parts:
            try:
                res[p] = funcs[p](ctx)
            except Exception as e:  # noqa: BLE001 - one broken part must not lose the others
                log(f"{p} failed: {e!r}")
                res[p] = {"error": repr(e)}
            finally:
                stop_all()
            write_outputs(ctx, res)
    finally:
        stop_all()
    res["machine"]["loadavg_end"] = loadavg()
    md = write_outputs(ctx, res)
    print(md)
    return 0


def write_outputs(ctx: Ctx, res: dict) -> str:
    res["summary"] = build_summary(res)
    md = render_md(res)
    (ctx.results_dir / f"{ctx.stamp}.json").write_text(json.dumps(res, indent=2) + "\n")
    (ctx.results_dir / f"{ctx.stamp}.md").write_text(md)
    shutil.copyfile(ctx.results_dir / f"{ctx.stamp}.md",
                    ctx.results_dir / ("latest-smoke.md" if ctx.smoke else "latest.md"))
    return md


if __name__ == "__main__":
    sys.exit(main())
