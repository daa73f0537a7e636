#!/usr/bin/env python3
"""Loads a large LNP data set into a running Strowger over the admin API
while SIPp drives calls through it, and reports whether any call failed or
was delayed (the issue: "a 10-million-row LNP table must load without
pausing calls").

    python3 benches/harness/lnp_load.py [--rows 10000000] [--rate 100] [--seconds 60]

Needs the release binary ($CARGO_TARGET_DIR/release/strowger) and the
plugins (scripts/build-guests.sh). Everything on 127.0.0.x, bounded.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SIPP = ROOT / "benches" / "sipp"
TOKEN = "lnp-bench-token"


def free_port(ip, kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lnp-"))
    csv = work / "lnp.csv"
    t0 = time.monotonic()
    rnd = random.Random(7)
    with open(csv, "w") as f:
        f.write("# number,routing number\n")
        base = 5511900000000
        carriers = ["55341", "55320", "55321", "55315", "55331"]
        for i in range(a.rows):
            f.write(f"{base + i * 3},{carriers[rnd.randrange(5)]}\n")
    gen_s = time.monotonic() - t0
    size_mb = csv.stat().st_size / 1e6
    print(f"generated {a.rows} rows ({size_mb:.0f} MB) in {gen_s:.1f} s", flush=True)

    sut, uac_ip, uas_ip = "127.0.0.2", "127.0.0.1", "127.0.0.3"
    sport, aport = free_port(sut), free_port("127.0.0.1", socket.SOCK_STREAM)
    uas_port, uac_port = free_port(uas_ip), free_port(uac_ip)
    routes = {"routes": [{"name": "bench", "source": ["trunk:uac"], "b": ["_90."],
                          "b_rewrite": "91${EXTEN:2}", "destination": {"trunk": "uas"}}]}
    (work / "routes.json").write_text(json.dumps(routes))
    (work / "strowger.toml").write_text(f"""
[sip]
listen = ["udp:{sut}:{sport}"]
[store]
path = "{work}/s.db"
[plugins]
dir = "{TARGET}/plugins"
[admin]
listen = "127.0.0.1:{aport}"
token = "{TOKEN}"
[protection]
rate_limit = 0
[media]
enabled = false
[[trunks]]
name = "uac"
host = "{uac_ip}"
inbound = "ip"
[[trunks]]
name = "uas"
host = "{uas_ip}"
port = {uas_port}
inbound = "none"
session_expires_s = 0
[[bindings]]
hook = "route"
plugin = "route-table"
config_file = "routes.json"
deadline_ms = 20
""")
    sw = subprocess.Popen([str(TARGET / "release" / "strowger"), "serve", "--config", str(work / "strowger.toml")],
                          stdout=open(work / "sw.log", "w"), stderr=subprocess.STDOUT,
                          env={**os.environ, "STROWGER_LOG": "warn"})
    time.sleep(3)
    calls = a.rate * a.seconds
    common = ["-trace_stat", "-stf", "stat.csv", "-fd", "1", "-nostdin", "-buff_size", "4194304",
              "-timeout", f"{a.seconds + 60}s", "-timeout_error"]
    uas = subprocess.Popen(["sipp", "-sf", str(SIPP / "call-uas.xml"), "-i", uas_ip, "-p", str(uas_port)] + common,
                           cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    uac_dir = work / "uac"
    uac_dir.mkdir()
    uac = subprocess.Popen(["sipp", "-sf", str(SIPP / "call-uac.xml"), "-i", uac_ip, "-p", str(uac_port),
                            "-key", "prefix", "90", "-r", str(a.rate), "-m", str(calls), "-l", str(a.rate * 5),
                            "-recv_timeout", "8000"] + common + [f"{sut}:{sport}"],
                           cwd=uac_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(min(10, a.seconds / 4))
    print(f"uploading while calls run at {a.rate}/s ...", flush=True)
    t1 = time.monotonic()
    req = urllib.request.Request(f"http://127.0.0.1:{aport}/v1/datasets/br-ported", data=open(csv, "rb"),
                                 method="POST", headers={"Authorization": f"Bearer {TOKEN}",
                                                         "Content-Type": "text/csv",
                                                         "Content-Length": str(csv.stat().st_size)})
    with urllib.request.urlopen(req, timeout=900) as r:
        body = json.loads(r.read())
    upload_s = time.monotonic() - t1
    print(f"upload answered in {upload_s:.1f} s: {json.dumps(body)[:300]}", flush=True)
    uac.wait(timeout=a.seconds + 120)
    uas.terminate()
    rss_kb = int(open(f"/proc/{sw.pid}/status").read().split("VmRSS:")[1].split()[0])
    sw.terminate()
    sw.wait(timeout=30)
    # SIPp stat: last line, fields by the header
    lines = (uac_dir / "stat.csv").read_text().strip().splitlines()
    head, last = lines[0].split(";"), lines[-1].split(";")
    st = dict(zip(head, last))
    ok, failed, retr = int(st["SuccessfulCall(C)"]), int(st["FailedCall(C)"]), int(st["Retransmissions(C)"])
    # the answer to every INVITE within T1 (500 ms) shows as 0 retransmissions;
    # the largest call-setup time SIPp saw in any period is its max response time
    def ms(v):  # SIPp writes HH:MM:SS:microseconds
        h, m, s_, us = (int(x) for x in v.split(":"))
        return ((h * 60 + m) * 60 + s_) * 1000 + us / 1000

    col = head.index("ResponseTime1(P)") if "ResponseTime1(P)" in head else None
    rt = [ms(x.split(";")[col]) for x in lines[1:] if col is not None and x.split(";")[col]]
    print(json.dumps({"rows": a.rows, "csv_mb": round(size_mb), "upload_s": round(upload_s, 1),
                      "calls": calls, "successful": ok, "failed": failed, "retransmissions": retr,
                      "setup_avg_ms_worst_period": max(rt) if rt else None,
                      "switch_rss_mb": rss_kb // 1024}), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
