#!/usr/bin/env python3
"""What a paid session costs on the deployed path: every AWS bill line, per paid session.

The shipped function binaries (lambda-release) run as Lambda runs them, each its own process
behind the Runtime API emulator of ../shared/perf, and are fed what AWS would feed them:

  session-create    API Gateway (HTTP API v2) POST /v1/payment_sessions, with an Idempotency-Key
  hosted-page       GET /pay/{token} (opened from an allowed domain), POST /pay/{token}/card
  stream-consumer   the table's stream, read from DynamoDB Local as the event source mapping
                    reads it and handed over in its event shape
  webhook-dispatcher  the webhook queue, received from moto's SQS as the SQS event source
                    mapping does (batches of 10, successes deleted, failures reported)

and a webhook receiver (one endpoint subscribed to every event) answers 200. Each step's
stream records and queued messages are handed on before the next step, as at low traffic
(every write its own stream batch); `--traffic high` hands them on at the end, in batches
as full as the template allows (100 stream records, 10 messages), as under steady load. DynamoDB requests pass the metering proxy of tests/src/capacity.rs
(AWS's write-unit rule; `metering_proxy` bench), SQS and Scheduler requests a counting proxy
in front of moto. Prints, per paid session: DynamoDB requests and units by operation and item
type; per function invocations, CPU per call, modelled billed duration at the template's
MemorySize; SQS requests; log bytes; and $ per million paid sessions for each bill line.

Lambda duration is modelled, not measured on AWS: CPU per call measured here (schedstat of
the function's process, idle to idle) scaled by Lambda's CPU share (1 vCPU at 1,769 MB), plus
the call's wait (its wall time minus its CPU, DynamoDB Local's and the receiver's latency).

Usage (PERFWORK: scratch directory outside the repo; run with a Python that has boto3 and
moto, as scripts/test installs: scripts/cost --deployed does):
  PERFWORK=/tmp/perfwork benches/perf/lifecycle.py [-n 20] [--traffic low|high] [--no-build] [--perf-dir ../shared/perf]
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, api_event, common_args, sh, target_dir, workplace  # noqa: E402

TABLE = "paysession-lifecycle"
SHOP = "https://shop.example"
PUBLIC_URL = "https://pay.example.com"
FUNCTIONS = ("oauth-token", "webhook-endpoint-create", "session-create", "hosted-page", "stream-consumer", "webhook-dispatcher",
             "processor-sync")
# What a paid session runs; the first two only set the run up.
MEASURED = FUNCTIONS[2:]

# List prices, us-east-1, December 2026 (on demand): Lambda arm64 (the template's
# architecture), SQS standard, EventBridge Scheduler invocations, CloudWatch Logs standard
# ingestion, HTTP API.
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND = 0.0000133334
SQS_REQUEST = 0.40 / 1e6
SCHEDULER_INVOCATION = 1.00 / 1e6
LOG_GB = 0.50
HTTP_API_REQUEST = 1.00 / 1e6
FULL_CPU_MB = 1769


def template_memory() -> dict[str, int]:
    """Each function's MemorySize in template.yaml (its own, else the Globals')."""
    default, sizes, uri = 128, {}, None
    with open(os.path.join(ROOT, "template.yaml")) as f:
        lines = f.read().splitlines()
    for line in lines:
        m = re.match(r"^    MemorySize: (\d+)", line)
        if m:
            default = int(m.group(1))
            break
    for line in lines:
        if re.match(r"^  [A-Za-z0-9]+:$", line):
            uri = None
        m = re.match(r"^      CodeUri: target/lambda/([a-z0-9-]+)/", line)
        if m:
            uri = m.group(1)
            sizes[uri] = default
        m = re.match(r"^      MemorySize: (\d+)", line)
        if m and uri:
            sizes[uri] = int(m.group(1))
    return sizes


def stream_filters() -> list[dict]:
    """The stream consumer's FilterCriteria patterns in template.yaml."""
    with open(os.path.join(ROOT, "template.yaml")) as f:
        text = f.read()
    block = text[text.index("  StreamConsumerFunction:"):]
    block = block[:block.index("\n\n  ")]
    return [json.loads(m) for m in re.findall(r"^ +- Pattern: '(.*)'$", block, re.M)]


def passes(filters: list[dict], record: dict) -> bool:
    """Lambda's event filtering, the part of the pattern syntax the template uses (as
    tests/src/aws.rs `passes`): every key matches; a list matches a value equal to one of its
    strings or passing one of its `prefix` or `exists` tests."""
    missing = object()

    def matches(pattern, value) -> bool:
        if isinstance(pattern, dict):
            return all(matches(p, value.get(k, missing) if isinstance(value, dict) else missing) for k, p in pattern.items())
        for option in pattern:
            if isinstance(option, dict) and "exists" in option:
                if option["exists"] == (value is not missing):
                    return True
            elif isinstance(option, dict):
                if isinstance(value, str) and value.startswith(option.get("prefix", "\0")):
                    return True
            elif value is not missing and option == value:
                return True
        return False

    return any(matches(f, record) for f in filters)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Function:
    """One function process behind its own Runtime API emulator; every invocation's CPU
    (idle to idle) and wall time is kept."""

    def __init__(self, perf: str, work: str, binary: str, name: str, env: dict, memory: int):
        from runtime_api import RuntimeAPIServer  # ../shared/perf
        from lambda_bench import CpuSample
        self.CpuSample, self.name, self.memory = CpuSample, name, memory
        self.api = RuntimeAPIServer(function_name=name)
        address = self.api.start()
        lambda_env = {"AWS_LAMBDA_RUNTIME_API": address, "AWS_LAMBDA_FUNCTION_NAME": name,
                      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                      "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}", "AWS_LAMBDA_LOG_STREAM_NAME": "lifecycle"}
        self.log_path = os.path.join(work, f"lifecycle-{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary], env={**env, **lambda_env}, stdout=self.log, stderr=subprocess.STDOUT)
        if not self.api.wait_polls(1, 30, alive=lambda: self.proc.poll() is None):
            raise SystemExit(f"{name} did not start: {self.api.init_error} (log: {self.log_path})")
        self.calls: list[tuple[float, float]] = []  # (cpu ms, wall ms)
        self.polls = 1

    def invoke(self, event: dict) -> dict:
        before = self.CpuSample(self.proc.pid)
        inv = self.api.submit(json.dumps(event).encode())
        if not self.api.wait_done(inv, 60, alive=lambda: self.proc.poll() is None):
            raise SystemExit(f"{self.name} did not answer (log: {self.log_path})")
        self.polls += 1
        self.api.wait_polls(self.polls, 10, alive=lambda: self.proc.poll() is None)
        cpu = self.CpuSample(self.proc.pid).ms_since(before)
        self.calls.append((cpu, inv.latency_ns / 1e6))
        if inv.outcome != "response":
            raise SystemExit(f"{self.name} failed: {inv.body!r} (log: {self.log_path})")
        return json.loads(inv.body)

    def log_bytes(self) -> int:
        self.log.flush()
        return os.path.getsize(self.log_path)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.api.stop()
        self.log.close()


class CountingProxy:
    """Forwards HTTP to `target` (moto) and counts requests by AWS operation."""

    def __init__(self, target: str):
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        host, port = urllib.parse.urlsplit(target).netloc.split(":")
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                op = (self.headers.get("x-amz-target") or "").rsplit(".", 1)[-1]
                if not op and self.path.startswith("/schedules/"):  # Scheduler's REST API
                    op = {"POST": "CreateSchedule", "PUT": "UpdateSchedule", "DELETE": "DeleteSchedule"}.get(self.command, "GetSchedule")
                if not op:
                    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
                    op = (form.get("Action") or [f"{self.command} {self.path.split('?')[0]}"])[0]
                with proxy.lock:
                    proxy.counts[op] = proxy.counts.get(op, 0) + 1
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_DELETE = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def take(self) -> dict[str, int]:
        with self.lock:
            out, self.counts = self.counts, {}
        return out


class Receiver:
    """The merchant's webhook endpoint: answers 200 and keeps each webhook-id."""

    def __init__(self):
        self.ids: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.ids.append(self.headers.get("webhook-id", ""))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"


def lambda_attribute(v: dict) -> dict:
    """A stream record's attribute as Lambda delivers it (binary as base64)."""
    (kind, inner), = v.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "M":
        return {"M": {k: lambda_attribute(x) for k, x in inner.items()}}
    if kind == "L":
        return {"L": [lambda_attribute(x) for x in inner]}
    return {kind: inner}


class StreamSource:
    """The DynamoDB stream event source mapping: the table's stream from TRIM_HORIZON, in
    batches of up to 100 records (template.yaml's BatchSize)."""

    def __init__(self, boto3, endpoint: str, table: str):
        self.filters = stream_filters()
        ddb = boto3.client("dynamodb", endpoint_url=endpoint)
        self.arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.client = boto3.client("dynamodbstreams", endpoint_url=endpoint)
        self.iterators: dict[str, str | None] = {}
        self.read = 0

    def records(self) -> list[dict]:
        for shard in self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        out = []
        for shard, it in list(self.iterators.items()):
            if not it:
                continue
            got = self.client.get_records(ShardIterator=it, Limit=100)
            self.iterators[shard] = got.get("NextShardIterator")
            for r in got["Records"]:
                d = r["dynamodb"]
                image = lambda name: {k: lambda_attribute(v) for k, v in d.get(name, {}).items()}
                record = {"eventID": r["eventID"], "eventName": r["eventName"], "eventSource": "aws:dynamodb",
                            "eventSourceARN": self.arn, "awsRegion": "us-east-1",
                            "dynamodb": {"Keys": image("Keys"), "NewImage": image("NewImage"), "OldImage": image("OldImage"),
                                         "SequenceNumber": d["SequenceNumber"], "StreamViewType": "NEW_AND_OLD_IMAGES"}}
                if "UserIdentity" in r:
                    record["userIdentity"] = {"type": r["UserIdentity"]["Type"], "principalId": r["UserIdentity"]["PrincipalId"]}
                self.read += 1
                if passes(self.filters, record):  # the event source mapping's filtering
                    out.append(record)
        return out


class Pipeline:
    """Hands stream records to the stream consumer and queued messages to the dispatcher, as
    the two event source mappings do, until both are drained; counts the SQS requests the
    SQS mapping makes (receives and deletes)."""

    def __init__(self, stream: StreamSource, sqs, queue_url: str, consumer: Function, dispatcher: Function,
                 scheduler, group: str, sync: Function):
        self.stream, self.sqs, self.queue_url = stream, sqs, queue_url
        self.consumer, self.dispatcher = consumer, dispatcher
        self.scheduler, self.group, self.sync = scheduler, group, sync
        self.mapping_requests = {"ReceiveMessage": 0, "DeleteMessageBatch": 0}
        self.fired = self.passed = 0

    def fire_schedules(self) -> int:
        """Runs every one-time schedule the stream consumer created (processor syncs) now, as
        Scheduler would at its time, and deletes it (ActionAfterCompletion DELETE)."""
        names = [s["Name"] for s in self.scheduler.list_schedules(GroupName=self.group).get("Schedules", [])]
        for name in names:
            schedule = self.scheduler.get_schedule(Name=name, GroupName=self.group)
            if schedule["Target"]["Arn"].endswith(":processor-sync"):
                self.sync.invoke(json.loads(schedule["Target"]["Input"]))
                self.fired += 1
            self.scheduler.delete_schedule(Name=name, GroupName=self.group)
        return len(names)

    def drain(self):
        while True:
            records = self.stream.records()
            self.passed += len(records)
            for i in range(0, len(records), 100):
                batch = records[i:i + 100]
                answer = self.consumer.invoke({"Records": batch})
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
                if failed:
                    keys = [r["dynamodb"]["Keys"] for r in batch if r["dynamodb"]["SequenceNumber"] in failed]
                    raise SystemExit(f"stream consumer failed on {keys} (log: {self.consumer.log_path})")
            messages = self.receive()
            fired = self.fire_schedules()
            if not records and not messages and not fired:
                return

    def receive(self) -> int:
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            return 0
        # Only receives that return messages: the mapping's long polls of an idle queue cost
        # per queue and hour, not per session.
        self.mapping_requests["ReceiveMessage"] += 1
        event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                              "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                              "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:webhooks",
                              "awsRegion": "us-east-1"} for m in messages]}
        answer = self.dispatcher.invoke(event)
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
            self.mapping_requests["DeleteMessageBatch"] += 1
        if failed:
            raise SystemExit(f"dispatcher reported failures: {answer}")
        return len(messages)


def attr(html: str, prefix: str) -> str:
    start = html.index(prefix) + len(prefix)
    return html[start:html.index('"', start)]


def page_event(template: dict, method: str, route: str, path: str, token: str, headers: dict, body: str) -> dict:
    ev = api_event(template, method, path, headers, body)
    ev["routeKey"] = ev["requestContext"]["routeKey"] = f"{method} {route}"
    ev["pathParameters"] = {"token": token}
    ev["headers"].pop("authorization", None)
    return ev


def platform_log_bytes(fn: Function) -> int:
    """The START, END and REPORT lines Lambda writes for each invocation (text format), as
    long as they would be with this run's durations."""
    rid = "00000000-0000-0000-0000-000000000000"
    total = 0
    for cpu, wall in fn.calls:
        billed = modelled_ms(cpu, wall, fn.memory)
        total += len(f"START RequestId: {rid} Version: $LATEST\n")
        total += len(f"END RequestId: {rid}\n")
        total += len(f"REPORT RequestId: {rid}\tDuration: {billed:.2f} ms\tBilled Duration: {math.ceil(billed)} ms\t"
                     f"Memory Size: {fn.memory} MB\tMax Memory Used: 20 MB\t\n")
    return total


def modelled_ms(cpu: float, wall: float, memory: int) -> float:
    """A call's duration on Lambda at `memory` MB: its CPU at Lambda's share of a vCPU plus
    its wait (wall minus CPU)."""
    return cpu * max(1.0, FULL_CPU_MB / memory) + max(0.0, wall - cpu)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=20, help="paid sessions")
    p.add_argument("--traffic", choices=("low", "high"), default="low",
                   help="low: each step's stream records and messages are handed on before the next (every write its "
                        "own batch); high: all at the end, in batches as full as the template allows (100 records, 10 messages)")
    common_args(p)
    p.add_argument("--bin", action="append", default=[], metavar="FUNCTION=PATH",
                   help="run this bootstrap for FUNCTION instead of the one built (e.g. an earlier build, for a before/after)")
    a = p.parse_args()
    overrides = dict(spec.split("=", 1) for spec in a.bin)
    for name, path in overrides.items():
        if name not in FUNCTIONS or not os.path.isfile(path):
            sys.exit(f"--bin {name}={path}: expected one of {', '.join(FUNCTIONS)} and an existing file")
    try:
        import boto3
    except ImportError:
        sys.exit("boto3 is needed: run with the Python scripts/test installs (scripts/cost --deployed does)")
    work, perf, emulator = workplace(a)
    import ddb_local  # the instrument's own DynamoDB Local launcher
    moto_server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(moto_server):
        sys.exit(f"no moto_server beside {sys.executable}: run with the Python scripts/test installs")

    target = target_dir()
    if not a.no_build:
        sh(["cargo", "build", "--profile", "lambda-release", *[x for f in FUNCTIONS for x in ("-p", f"fn-{f}")]])
        sh(["cargo", "build", "--release", "-p", "paysession-admin"])
    shipped = os.path.join(target, "lambda-release")
    admin = os.path.join(target, "release", "paysession-admin")
    memory = template_memory()

    aws = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "perf",
           "AWS_SECRET_ACCESS_KEY": "perf", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    os.environ.update({k: v for k, v in aws.items() if k.startswith("AWS_") and "FILE" not in k})
    ddb = ddb_local.DynamoDBLocal(emulator, log_path=os.path.join(work, "ddb-local.log"))
    started: list = []
    try:
        endpoint = ddb.start()
        moto_port = free_port()
        moto = subprocess.Popen([moto_server, "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(moto)
        moto_url = f"http://127.0.0.1:{moto_port}"
        meter = subprocess.Popen(["cargo", "bench", "-q", "-p", "paysession-tests", "--bench", "metering_proxy", "--", endpoint],
                                 cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(meter)
        meter_url = meter.stdout.readline().strip().split("=", 1)[1]
        counting = CountingProxy(moto_url)
        for _ in range(100):
            try:
                boto3.client("sqs", endpoint_url=moto_url).list_queues()
                break
            except Exception:
                time.sleep(0.1)
        sqs = boto3.client("sqs", endpoint_url=moto_url)
        scheduler = boto3.client("scheduler", endpoint_url=moto_url)
        scheduler.create_schedule_group(Name="paysession")
        queue_url = sqs.create_queue(QueueName="webhooks", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
        dlq_url = sqs.create_queue(QueueName="webhooks-dlq")["QueueUrl"]

        key = base64.b64encode(secrets.token_bytes(32)).decode()
        admin_env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "PAYSESSION_TOKEN_SIGNING_KEY": key}
        sh([admin, "--table", TABLE, "init"], env=admin_env)
        merchant = json.loads(sh([admin, "--table", TABLE, "merchant", "create", "--name", "Lifecycle Shop"], env=admin_env, capture=True))

        fn_env = {**aws, "PATH": os.environ.get("PATH", ""), "PAYSESSION_TABLE": TABLE, "PAYSESSION_TOKEN_SIGNING_KEY": key,
                  "PAYSESSION_PUBLIC_URL": PUBLIC_URL, "PAYSESSION_SANDBOX": "true",
                  "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN",  # template.yaml's LoggingConfig
                  "AWS_ENDPOINT_URL_DYNAMODB": meter_url, "AWS_ENDPOINT_URL_SQS": counting.url,
                  "AWS_ENDPOINT_URL_SCHEDULER": counting.url, "AWS_ENDPOINT_URL_EVENTBRIDGE": counting.url,
                  "PAYSESSION_WEBHOOK_QUEUE_URL": queue_url, "PAYSESSION_WEBHOOK_DLQ_URL": dlq_url,
                  "PAYSESSION_SCHEDULE_GROUP": "paysession", "PAYSESSION_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/scheduler",
                  "PAYSESSION_RECURRING_CHARGE_ARN": "arn:aws:lambda:us-east-1:123456789012:function:recurring-charge",
                  "PAYSESSION_SCHEDULE_DLQ_ARN": "arn:aws:sqs:us-east-1:123456789012:schedules-dlq",
                  "PAYSESSION_PROCESSOR_SYNC_ARN": "arn:aws:lambda:us-east-1:123456789012:function:processor-sync",
                  # Loopback receiver: the dispatcher and endpoint-create may reach it (never deployed so).
                  "PAYSESSION_ALLOW_PRIVATE_WEBHOOKS": "true"}
        fns = {}
        for name in FUNCTIONS:
            binary = os.path.abspath(overrides.get(name) or os.path.join(shipped, name))
            fns[name] = Function(perf, work, binary, name, fn_env, memory.get(name, 128))
            started.append(fns[name])

        with open(os.path.join(perf, "events", "apigw-v2-post.json")) as f:
            template = json.load(f)
        basic = base64.b64encode(f"{merchant['client_id']}:{merchant['client_secret']}".encode()).decode()
        token_answer = fns["oauth-token"].invoke(api_event(template, "POST", "/oauth/token", {
            "authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"}, "grant_type=client_credentials"))
        token = json.loads(token_answer["body"])["access_token"]
        receiver = Receiver()
        created = fns["webhook-endpoint-create"].invoke(api_event(template, "POST", "/v1/webhook_endpoints", {
            "authorization": f"Bearer {token}", "content-type": "application/json"}, json.dumps({"url": receiver.url, "events": ["*"]})))
        if created["statusCode"] != 201:
            sys.exit(f"webhook endpoint not created: {created}")

        stream = StreamSource(boto3, endpoint, TABLE)
        pipeline = Pipeline(stream, sqs, queue_url, fns["stream-consumer"], fns["webhook-dispatcher"], scheduler, "paysession",
                            fns["processor-sync"])
        pipeline.drain()  # the setup's own records
        for f in fns.values():
            f.calls.clear()
        logs_before = {name: f.log_bytes() for name, f in fns.items()}
        pipeline.mapping_requests = dict.fromkeys(pipeline.mapping_requests, 0)
        pipeline.fired = pipeline.passed = stream.read = 0
        counting.take()
        meter.stdin.write("reset\n")
        meter.stdin.flush()
        meter.stdout.readline()
        receiver.ids.clear()

        for i in range(a.n):
            body = json.dumps({"amount": 1050, "currency": "EUR", "customer_id": "cus_cost", "reference": f"cost-{i}",
                               "allowed_domains": [SHOP], "customer": {"email": "ada@example.com"}})
            r = fns["session-create"].invoke(api_event(template, "POST", "/v1/payment_sessions", {
                "authorization": f"Bearer {token}", "content-type": "application/json", "idempotency-key": f"cost-{i}"}, body))
            if r["statusCode"] != 201:
                sys.exit(f"create: {r}")
            if a.traffic == "low":
                pipeline.drain()
            path = json.loads(r["body"])["url"][len(PUBLIC_URL):]
            page_token = path.split("/")[2]
            page = fns["hosted-page"].invoke(page_event(template, "GET", "/pay/{token}", path, page_token,
                                                        {"referer": f"{SHOP}/checkout"}, ""))
            if page["statusCode"] != 200:
                sys.exit(f"page: {page}")
            html = base64.b64decode(page["body"]).decode() if page.get("isBase64Encoded") else page["body"]
            form = urllib.parse.urlencode({"csrf": attr(html, 'name="csrf" value="'), "v": attr(html, 'name="v" value="'),
                                           "card_number": "4242424242424242", "expiry": "12/30", "cvc": "123"})
            paid = fns["hosted-page"].invoke(page_event(template, "POST", "/pay/{token}/card", f"{path}/card", page_token,
                                                        {"content-type": "application/x-www-form-urlencoded"}, form))
            if paid["statusCode"] != 303:
                sys.exit(f"pay: {paid}")
            if a.traffic == "low":
                pipeline.drain()
        pipeline.drain()

        deliveries = len(receiver.ids)
        meter.stdin.write(f"report {a.n} {deliveries}\n")
        meter.stdin.flush()
        print("DynamoDB (deployed path)")
        totals = None
        for line in meter.stdout:
            if line.startswith("totals "):
                totals = json.loads(line[len("totals "):])
                break
            print(line, end="")
        print(f"\nstream records per paid session: {stream.read / a.n:.2f} written, "
              f"{pipeline.passed / a.n:.2f} through the template's filters to the stream consumer")
        report(a.n, fns, logs_before, counting.take(), pipeline.mapping_requests, pipeline.fired, totals)
    finally:
        for s in reversed(started):
            if isinstance(s, Function):
                s.stop()
            else:
                s.kill()
                s.wait()
        ddb.stop()
    return 0


def report(n: int, fns: dict, logs_before: dict, by_functions: dict, sqs_by_mapping: dict, fired: int, ddb: dict):
    print(f"\nLambda (arm64, the template's MemorySize; duration modelled: CPU x {FULL_CPU_MB}/MB + wait)")
    print(f"{'function':<20} {'MB':>5} {'calls':>7} {'CPU ms':>8} {'wall ms':>8} {'billed ms':>10} {'log B':>8}")
    lambda_dollars, log_bytes, api_calls = 0.0, 0.0, 0
    for name in MEASURED:
        f = fns[name]
        calls = len(f.calls)
        cpu = sum(c for c, _ in f.calls) / max(calls, 1)
        wall = sum(w for _, w in f.calls) / max(calls, 1)
        billed = sum(math.ceil(modelled_ms(c, w, f.memory)) for c, w in f.calls)
        own_logs = f.log_bytes() - logs_before[name]
        logs = own_logs + platform_log_bytes(f)
        log_bytes += logs
        lambda_dollars += calls * LAMBDA_REQUEST + billed / 1000 * f.memory / 1024 * LAMBDA_GB_SECOND
        if name in ("session-create", "hosted-page"):
            api_calls += calls
        print(f"{name:<20} {f.memory:>5} {calls / n:>7.2f} {cpu:>8.3f} {wall:>8.2f} {billed / max(calls, 1):>10.1f} {logs / n:>8.0f}")
    print("(calls, log bytes per paid session; CPU, wall, billed per call; log bytes: the function's own lines plus "
          "Lambda's START/END/REPORT)")
    sqs_by_functions = {op: c for op, c in by_functions.items() if "Schedule" not in op}
    sqs_requests = sum(sqs_by_functions.values()) + sum(sqs_by_mapping.values())
    print("\nSQS requests per paid session: "
          + ", ".join(f"{op} {c / n:.2f}" for op, c in sorted({**sqs_by_functions, **sqs_by_mapping}.items()))
          + " (the functions' and the event source mapping's; its idle long polls are per queue, not per session)")
    schedules = {op: c for op, c in by_functions.items() if "Schedule" in op}
    print("EventBridge Scheduler per paid session: "
          + (", ".join(f"{op} {c / n:.2f}" for op, c in sorted(schedules.items())) or "no request")
          + f"; schedules fired {fired / n:.2f}")
    # The HTTP API's access log: one line per request (template.yaml's format, ~330 B filled in).
    access_log = 330 * api_calls
    per = lambda total: total / n * 1e6
    lines = [
        ("DynamoDB (AWS's rule)", ddb["dollars_per_million"]),
        ("Lambda requests + duration", per(lambda_dollars)),
        ("SQS requests", per(sqs_requests * SQS_REQUEST)),
        ("EventBridge Scheduler invocations", per(fired * SCHEDULER_INVOCATION)),
        ("CloudWatch Logs ingestion", per((log_bytes + access_log) / 1e9 * LOG_GB)),
        ("API Gateway HTTP API requests", per(api_calls * HTTP_API_REQUEST)),
    ]
    total = sum(d for _, d in lines)
    print(f"\n$ per million paid sessions (us-east-1 list prices; {api_calls / n:.0f} API requests, "
          f"{(log_bytes + access_log) / n:.0f} log bytes per paid session)")
    for what, d in lines:
        print(f"{what:<32} {d:>10.2f} {d / total * 100:>6.1f} %")
    print(f"{'total':<32} {total:>10.2f}")


if __name__ == "__main__":
    sys.exit(main())
