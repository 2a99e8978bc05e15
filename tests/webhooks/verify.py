"""Verifies recorded webhook requests with the official Standard Webhooks library.

stdin:  {"secret": "whsec_...", "messages": [{"headers": {...}, "body": "..."}, ...]}
stdout: {"results": [true | "<error>", ...], "library": "standardwebhooks <version>"}
"""
import json
import sys
from importlib.metadata import version

from standardwebhooks.webhooks import Webhook

request = json.load(sys.stdin)
hook = Webhook(request["secret"])
results = []
for message in request["messages"]:
    try:
        hook.verify(message["body"], message["headers"])
        results.append(True)
    except Exception as error:  # the library raises WebhookVerificationError
        results.append(f"{type(error).__name__}: {error}")
json.dump({"results": results, "library": f"standardwebhooks {version('standardwebhooks')}"}, sys.stdout)
