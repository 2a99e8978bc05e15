#!/usr/bin/env python3
"""Memory sized by data: the CPU per call of session-create, session-get and hosted-page (the
page a customer opens) measured on ../shared/perf's Lambda Runtime API emulator, paired with a
`lambda_http` hello world in the same run, turned into the latency and cost per million calls
each would have at 128, 256, 512 and 1,024 MB, and the MemorySize that is cheapest.

The model, stated so it can be argued with:
  - Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB, so a call's
    CPU time stretches by 1,769 / MB below that; the rest of its time (waiting on DynamoDB) does
    not. Warm latency at M = CPU per call x max(1, 1769 / M) + the wait measured here (warm p50
    minus CPU per call; DynamoDB Local on loopback, which is slower than DynamoDB in-region, so
    the waits are generous). Cold start the same with init CPU and init time.
  - Cost per million calls at arm64 list prices (us-east-1): $0.20 per million requests plus
    $0.0000133334 per GB-second of duration, billed per started millisecond.
  - This machine is x86_64 at its own clock; arm64 Graviton runs the same code at a similar
    rate per vCPU. Ratios to the hello world, measured in the same run, carry over better than
    milliseconds do; both are printed.
The choice: the cheapest MemorySize for warm calls; of two within 2 %, the faster.

Usage (PERFWORK: scratch directory outside the repo, as run.py):
  PERFWORK=/tmp/perfwork benches/perf/memory.py [-n 300] [--rounds 5] [--no-build]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import api_event, common_args, one_shot, provision, sh, target_dir, workplace  # noqa: E402

MEMORY_SIZES = (128, 256, 512, 1024)
FULL_VCPU_MB = 1769
GB_SECOND = 0.0000133334
PER_REQUEST = 0.20 / 1e6
FUNCTIONS = ("session-create", "session-get", "hosted-page")


def model(cpu_ms: float, wait_ms: float, mb: int) -> tuple[float, float]:
    """(latency ms, $ per million calls) at `mb`."""
    latency = cpu_ms * max(1.0, FULL_VCPU_MB / mb) + wait_ms
    cost = (PER_REQUEST + math.ceil(latency) / 1000 * mb / 1024 * GB_SECOND) * 1e6
    return latency, cost


def choose(rows: dict[int, tuple[float, float]]) -> int:
    cheapest = min(cost for _, cost in rows.values())
    near = [mb for mb, (_, cost) in rows.items() if cost <= cheapest * 1.02]
    return min(near, key=lambda mb: rows[mb][0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=300, help="warm invocations per run")
    p.add_argument("--rounds", type=int, default=5)
    common_args(p)
    a = p.parse_args()
    work, perf, emulator = workplace(a)
    import ddb_local
    target = target_dir()
    if not a.no_build:
        packages = [arg for f in (*FUNCTIONS, "oauth-token") for arg in ("-p", f"fn-{f}")]
        sh(["cargo", "build", "--profile", "lambda-release", *packages])
        sh(["cargo", "build", "--release", "-p", "paysession-admin"])
        if not os.path.exists(os.path.join(work, "target", "release", "hello-http")):
            sh([os.path.join(perf, "build_subjects.sh"), "rust"], env={**os.environ, "PERFWORK": work})
    release, shipped = os.path.join(target, "release"), os.path.join(target, "lambda-release")

    ddb = ddb_local.DynamoDBLocal(emulator, log_path=os.path.join(work, "ddb-local.log"))
    endpoint = ddb.start()
    try:
        env, fn_env, template, token = provision(work, perf, endpoint, release, shipped)
        bearer = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        body = json.dumps({"amount": 1050, "currency": "EUR", "customer_id": "cus_perf", "reference": "order-__UNIQUE__"})
        create = api_event(template, "POST", "/v1/payment_sessions", {**bearer, "idempotency-key": "perf-__UNIQUE__"}, body)
        # One session for the reads: its id and its page.
        # The page as a merchant's checkout opens it: launched from an allowed domain.
        shop = "https://shop.example"
        first_body = json.dumps({**json.loads(body.replace("__UNIQUE__", "memory-read")), "allowed_domains": [shop]})
        first = api_event(template, "POST", "/v1/payment_sessions", bearer, first_body)
        session = json.loads(one_shot(perf, work, shipped, "session-create", env, first)["body"])
        get = api_event(template, "GET", f"/v1/payment_sessions/{session['id']}", {"authorization": f"Bearer {token}"}, "")
        page_path = urllib.parse.urlparse(session["url"]).path
        page = api_event(template, "GET", page_path, {"accept": "text/html", "referer": f"{shop}/checkout"}, "")
        events = {"session-create": (create, 201), "session-get": (get, 200), "hosted-page": (page, 200)}

        with open(os.path.join(perf, "subjects.json")) as f:
            subjects = {"hello-http": json.load(f)["subjects"]["hello-http"]}
        for name, (event, status) in events.items():
            path = os.path.join(work, f"paysession-memory-{name}.json")
            with open(path, "w") as f:
                json.dump(event, f)
            subjects[name] = {"description": f"paysession {name} (lambda-release, x86_64)", "argv": [os.path.join(shipped, name)],
                              "handler": "bootstrap", "ddb": True, "env": {**fn_env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint},
                              "event": path, "expect_status": status}
        subjects_path = os.path.join(work, "paysession-memory-subjects.json")
        with open(subjects_path, "w") as f:
            json.dump({"subjects": subjects}, f, indent=1)
        results = os.path.join(work, f"paysession-memory-{int(time.time())}.jsonl")
        sh([sys.executable, os.path.join(perf, "lambda_bench.py"), "--subjects", subjects_path,
            "--event", os.path.join(perf, "events", "apigw-v2-post.json"), "-n", str(a.n), "--rounds", str(a.rounds),
            "--warmup-rounds", "1", "--ddb-endpoint", endpoint, "--jsonl", results, "hello-http", *FUNCTIONS])
    finally:
        ddb.stop()

    runs: dict[str, list[dict]] = {}
    with open(results) as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") == "run" and not r.get("warmup") and "error" not in r:
                runs.setdefault(r["subject"], []).append(r)

    def med(name: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[name])

    print()
    print(f"measured (median of {a.rounds} rounds x {a.n} warm calls; this machine, x86_64, DynamoDB Local on loopback)")
    print(f"{'function':<15} {'CPU/call ms':>11} {'x hello':>8} {'warm p50 ms':>11} {'init CPU ms':>11} {'init ms':>8} {'peak RSS MB':>11}")
    for name in ("hello-http", *FUNCTIONS):
        print(f"{name:<15} {med(name, 'cpu_per_warm_ms'):>11.3f} {med(name, 'cpu_per_warm_ms') / med('hello-http', 'cpu_per_warm_ms'):>8.2f} "
              f"{med(name, 'warm_p50_ms'):>11.2f} {med(name, 'init_cpu_ms'):>11.2f} {med(name, 'init_ms'):>8.2f} "
              f"{med(name, 'peak_rss_kb') / 1024:>11.1f}")
    print()
    print("expected on Lambda arm64 (warm latency ms / $ per million calls; cold start ms)")
    print(f"{'function':<15} " + " ".join(f"{str(mb) + ' MB':>24}" for mb in MEMORY_SIZES) + "  chosen")
    for name in FUNCTIONS:
        cpu = med(name, "cpu_per_warm_ms")
        wait = max(0.0, med(name, "warm_p50_ms") - cpu)
        init_cpu, init = med(name, "init_cpu_ms"), med(name, "init_ms")
        rows = {mb: model(cpu, wait, mb) for mb in MEMORY_SIZES}
        cells = []
        for mb in MEMORY_SIZES:
            latency, cost = rows[mb]
            cold = init_cpu * max(1.0, FULL_VCPU_MB / mb) + max(0.0, init - init_cpu)
            cells.append(f"{latency:5.1f} / ${cost:5.3f}; {cold:5.0f}")
        print(f"{name:<15} " + " ".join(f"{c:>24}" for c in cells) + f"  {choose(rows)} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
