#!/usr/bin/env python3
"""Lambda-level figures of paysession's session-create function, paired with the baselines of
the shared instrument (../shared/perf: Runtime API emulator + lambda_bench.py) in one run.

What it does, all on this machine, offline:
  1. builds fn-session-create and fn-oauth-token with the profile that ships (lambda-release: fat
     LTO, opt-level s; x86_64 here, arm64 ships) and paysession-admin (release),
     and the instrument's own subjects (hello-rs, hello-http, ddb-rs, the Python peer) unless built;
  2. starts DynamoDB Local, creates paysession's table with `paysession-admin init` (the table
     exactly as template.yaml defines it) and a merchant with `paysession-admin merchant create`;
  3. gets an access token from the real oauth-token function under the emulator;
  4. runs lambda_bench.py: hello-http, session-create, ddb-rs, py-peer alternating (A B A B),
     every create a real TransactWriteItems in DynamoDB Local (fresh reference and
     Idempotency-Key per call), and prints the paired ratios the performance issue tracks.

Usage (PERFWORK: a scratch directory outside the repo, shared with ../shared/perf):
  PERFWORK=/tmp/perfwork benches/perf/run.py [-n 500] [--rounds 10] [--no-build] [--perf-dir ../shared/perf]
      [--alt NAME=PATH ...]   (a build variant of session-create, alternated with it: e.g. another opt-level)
      [--alt-env NAME:KEY=VALUE ...]   (its environment on top of session-create's: e.g. RUST_LOG=warn)
"""
from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import secrets
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE = "paysession-perf"


def sh(argv, env=None, cwd=ROOT, capture=False):
    print("+ " + " ".join(argv), file=sys.stderr, flush=True)
    r = subprocess.run(argv, env=env, cwd=cwd, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return r.stdout if capture else None


def common_args(p: argparse.ArgumentParser) -> None:
    """The options every bench here takes: --no-build, --perf-dir, --emulator-dir."""
    p.add_argument("--no-build", action="store_true", help="use the binaries already built")
    p.add_argument("--perf-dir", default=os.path.join(ROOT, "..", "shared", "perf"))
    p.add_argument("--emulator-dir", help="DynamoDB Local's emulator folder (default: the one scripts/test installed)")


def workplace(a: argparse.Namespace) -> tuple[str, str, str]:
    """(PERFWORK, ../shared/perf, DynamoDB Local's emulator folder) for the options of
    `common_args`; ../shared/perf goes on sys.path (its ddb_local, runtime_api, lambda_bench)."""
    work = os.environ.get("PERFWORK") or sys.exit("set PERFWORK to a scratch directory outside the repo")
    os.makedirs(work, exist_ok=True)
    perf = os.path.abspath(a.perf_dir)
    sys.path.insert(0, perf)
    tools = os.environ.get("PAYSESSION_TOOLS_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "paysession-tools")
    emulator = a.emulator_dir or next(iter(sorted(glob.glob(os.path.join(tools, "dynamodb-local-*/package/emulator")))), None)
    if not emulator:
        sys.exit("no DynamoDB Local: run scripts/test once (it installs it) or pass --emulator-dir")
    return work, perf, emulator


def target_dir() -> str:
    meta = json.loads(sh(["cargo", "metadata", "--format-version", "1", "--no-deps"], capture=True))
    return meta["target_directory"]


def api_event(template: dict, method: str, path: str, headers: dict, body: str) -> dict:
    ev = json.loads(json.dumps(template))
    ev["routeKey"] = f"{method} {path}"
    ev["rawPath"] = path
    ev["requestContext"]["http"]["method"] = method
    ev["requestContext"]["http"]["path"] = path
    ev["requestContext"]["routeKey"] = f"{method} {path}"
    ev["requestContext"].pop("authorizer", None)
    h = {k: v for k, v in ev["headers"].items() if k not in ("authorization", "idempotency-key", "content-type", "content-length")}
    h.update(headers)
    h["content-length"] = str(len(body.encode()))
    ev["headers"] = h
    ev["body"] = body
    ev["isBase64Encoded"] = False
    return ev


def one_shot(perf: str, work: str, shipped: str, name: str, env: dict, event: dict) -> dict:
    """Runs function `name` under a one-shot Runtime API emulator for `event`; its answer."""
    import ddb_local
    path = os.path.join(work, f"paysession-{name}-once.json")
    with open(path, "w") as f:
        json.dump(event, f)
    emu = subprocess.Popen([sys.executable, os.path.join(perf, "runtime_api.py"), "--port", str(ddb_local.free_port()),
                            "--event", path, "--count", "1"], stdout=subprocess.PIPE, text=True)
    runtime_api = emu.stdout.readline().strip().split("=", 1)[1]
    lambda_env = {"AWS_LAMBDA_RUNTIME_API": runtime_api, "AWS_LAMBDA_FUNCTION_NAME": name,
                  "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                  "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}", "AWS_LAMBDA_LOG_STREAM_NAME": "perf"}
    fn = subprocess.Popen([os.path.join(shipped, name)], env={**env, **lambda_env}, stdout=subprocess.DEVNULL)
    answer = json.loads(emu.stdout.readline())
    fn.kill()  # before the one-shot emulator goes away, or its next poll panics the runtime
    fn.wait()
    emu.wait(timeout=30)
    return json.loads(answer["body"])


def provision(work: str, perf: str, endpoint: str, release: str, shipped: str):
    """paysession's table and a merchant on the DynamoDB Local at `endpoint`, and an access
    token from the real oauth-token function: (env, the functions' env, the event template, token)."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    aws = {"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "perf", "AWS_SECRET_ACCESS_KEY": "perf"}
    fn_env = {"PAYSESSION_TABLE": TABLE, "PAYSESSION_TOKEN_SIGNING_KEY": key,
              "PAYSESSION_PUBLIC_URL": "https://pay.example.com", "PAYSESSION_SANDBOX": "false"}
    env = {**os.environ, **aws, **fn_env}
    admin = os.path.join(release, "paysession-admin")
    sh([admin, "--table", TABLE, "init"], env=env)
    merchant = json.loads(sh([admin, "--table", TABLE, "merchant", "create", "--name", "Perf Shop"], env=env, capture=True))
    with open(os.path.join(perf, "events", "apigw-v2-post.json")) as f:
        template = json.load(f)
    basic = base64.b64encode(f"{merchant['client_id']}:{merchant['client_secret']}".encode()).decode()
    token_event = api_event(template, "POST", "/oauth/token",
                            {"authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"},
                            "grant_type=client_credentials")
    token = json.loads(one_shot(perf, work, shipped, "oauth-token", env, token_event)["body"])["access_token"]
    return env, fn_env, template, token


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=500, help="warm invocations per run")
    p.add_argument("--rounds", type=int, default=10)
    common_args(p)
    p.add_argument("--alt", action="append", default=[], metavar="NAME=PATH",
                   help="another session-create bootstrap (a build variant) run beside it, reported as NAME/session-create")
    p.add_argument("--alt-env", action="append", default=[], metavar="NAME:KEY=VALUE",
                   help="an environment variable for one --alt subject (e.g. quiet:RUST_LOG=warn)")
    a = p.parse_args()
    alts = dict(spec.split("=", 1) for spec in a.alt)
    for name, path in alts.items():
        if not os.path.isfile(path):
            sys.exit(f"--alt {name}: no file at {path}")
    alt_env = {}
    for spec in a.alt_env:
        name, _, pair = spec.partition(":")
        key, eq, value = pair.partition("=")
        if name not in alts or not key or not eq:
            sys.exit(f"--alt-env {spec}: expected NAME:KEY=VALUE with NAME one of the --alt names")
        alt_env.setdefault(name, {})[key] = value
    work, perf, emulator = workplace(a)
    import ddb_local  # the instrument's own DynamoDB Local launcher

    target = target_dir()
    if not a.no_build:
        sh(["cargo", "build", "--profile", "lambda-release", "-p", "fn-session-create", "-p", "fn-oauth-token"])
        sh(["cargo", "build", "--release", "-p", "paysession-admin"])
        if not os.path.exists(os.path.join(work, "target", "release", "hello-http")):
            sh([os.path.join(perf, "build_subjects.sh"), "rust"], env={**os.environ, "PERFWORK": work})
        if not os.path.exists(os.path.join(work, "venv-peer", "bin", "python")):
            sh([os.path.join(perf, "build_subjects.sh"), "python"], env={**os.environ, "PERFWORK": work})
    release = os.path.join(target, "release")
    shipped = os.path.join(target, "lambda-release")
    sizes = {b: os.path.getsize(os.path.join(shipped, b)) for b in ("session-create", "oauth-token")}

    ddb = ddb_local.DynamoDBLocal(emulator, log_path=os.path.join(work, "ddb-local.log"))
    endpoint = ddb.start()
    try:
        env, fn_env, template, token = provision(work, perf, endpoint, release, shipped)

        # Same shape as the peer's event: a fresh reference and Idempotency-Key per call.
        body = json.dumps({"amount": 1050, "currency": "EUR", "customer_id": "cus_perf", "reference": "order-__UNIQUE__"})
        create = api_event(template, "POST", "/v1/payment_sessions",
                           {"authorization": f"Bearer {token}", "content-type": "application/json",
                            "idempotency-key": "perf-__UNIQUE__"}, body)
        create_path = os.path.join(work, "paysession-create-event.json")
        with open(create_path, "w") as f:
            json.dump(create, f)

        with open(os.path.join(perf, "subjects.json")) as f:
            shared = json.load(f)["subjects"]
        subjects = {}
        for name in ("hello-http", "ddb-rs", "py-peer"):
            s = dict(shared[name])
            for k in ("cwd", "task_root"):
                if k in s:
                    s[k] = os.path.join(perf, s[k])
            subjects[name] = s
        subjects["session-create"] = {
            "description": "paysession fn-session-create (lambda-release, x86_64): token check, validation, one TransactWriteItems",
            "argv": [os.path.join(shipped, "session-create")], "handler": "bootstrap", "ddb": True,
            "env": {**fn_env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}, "event": create_path, "expect_status": 201}
        for name, path in alts.items():
            subjects[name] = {**subjects["session-create"], "description": f"session-create variant {path}",
                              "argv": [os.path.abspath(path)],
                              "env": {**subjects["session-create"]["env"], **alt_env.get(name, {})}}
        subjects_path = os.path.join(work, "paysession-subjects.json")
        with open(subjects_path, "w") as f:
            json.dump({"subjects": subjects}, f, indent=1)

        print(f"bootstrap sizes (stripped, unzipped): " + ", ".join(f"{b} {n / 1e6:.2f} MB" for b, n in sizes.items()),
              file=sys.stderr)
        sh([sys.executable, os.path.join(perf, "lambda_bench.py"), "--subjects", subjects_path,
            "--event", os.path.join(perf, "events", "apigw-v2-post.json"), "-n", str(a.n), "--rounds", str(a.rounds),
            "--warmup-rounds", "1", "--ddb-endpoint", endpoint, "--jsonl", os.path.join(work, f"paysession-{int(time.time())}.jsonl"),
            "hello-http", "session-create", *alts, "ddb-rs", "py-peer",
            "--ratio", "session-create/hello-http", "--ratio", "session-create/ddb-rs",
            "--ratio", "py-peer/session-create", "--ratio", "py-peer/ddb-rs",
            *[arg for name in alts for arg in ("--ratio", f"{name}/session-create")]])
    finally:
        ddb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
