"""Drives a running Clipia server with Clipia's OFFICIAL Python SDK (`clipia` on PyPI, pinned in
compat/requirements.txt), unchanged: only the base URL differs from api.clipia.ai. Run by the
Rust test `crates/clipia-server/tests/compat.rs`, which starts the server and passes
CLIPIA_BASE_URL, CLIPIA_LIVE_KEY and CLIPIA_TEST_KEY."""

import os
import sys

import clipia

base = os.environ["CLIPIA_BASE_URL"]
live = clipia.Clipia(api_key=os.environ["CLIPIA_LIVE_KEY"], base_url=base)
test = clipia.Clipia(api_key=os.environ["CLIPIA_TEST_KEY"], base_url=base)


def expect_error(call, status, code):
    try:
        call()
    except clipia.ClipiaApiError as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.message)
        assert e.message, "errors carry a message"
        return e
    raise AssertionError(f"expected {status} {code}")


# The sandbox: the brief's first job with a test key completes at once.
job = test.submit("nano-banana-2", input={"prompt": "a sunset over mountains, cinematic"})
assert job.status == clipia.COMPLETED and job.cost == 12, job
assert job.status_url.startswith(base) and job.response_url.startswith(base)
status = test.status(job.request_id)
assert status.is_terminal, status
result = test.result(job.request_id)
assert not result.pending and result.status == clipia.COMPLETED, result
assert result.output["images"][0]["url"].startswith(base), result.output

# subscribe() with a live key on a builtin model: queued, then completed, with updates.
updates = []
done = live.subscribe("clipia-mosaic", input={"prompt": "a lighthouse"}, on_queue_update=updates.append,
                      poll_interval=0.2, timeout=120)
assert done.status == clipia.COMPLETED and done.cost == 1, done
assert updates and updates[-1].status == clipia.COMPLETED, updates

# A result still running comes back pending (HTTP 202).
slow = test.submit("clipia-mosaic", input={"prompt": "clipia:slow"})
assert test.result(slow.request_id).pending

# Catalog, estimate, account.
models = live.models.list()
assert {"nano-banana-2", "clipia-landscape"} <= {m["slug"] for m in models["data"]}
assert live.models.get("clipia-landscape")["pricing"]["available"] is True
estimate = live.models.estimate("nano-banana-2", {"prompt": "x", "num_images": 2})
assert estimate.credits == 24, estimate
account = live.account.get()
assert account["balance"]["credits"] >= 0 and "usage_30d" in account, account

# Typed errors with .status and .code.
expect_error(lambda: live.submit("nano-banana-2", input={"prompt": "x"}), 503, "service_unavailable")
expect_error(lambda: live.submit("clipia-mosaic", input={"prompt": "x", "num_images": 9}), 422, "model_input_invalid")
expect_error(lambda: live.result("764cabcf-b745-4b3e-ae38-1200304cf45b"), 404, "not_found")
expect_error(lambda: live.submit("no-such-model", input={"prompt": "x"}), 404, "not_found")
stranger = clipia.Clipia(api_key="clipia_live_" + "x" * 40, base_url=base, max_retries=0)
expect_error(lambda: stranger.account.get(), 401, "invalid_api_key")

# The SDK's idempotency: the same key replays the same request.
first = live.submit("clipia-mosaic", input={"prompt": "once"}, idempotency_key="compat-1")
again = live.submit("clipia-mosaic", input={"prompt": "once"}, idempotency_key="compat-1")
assert first.request_id == again.request_id
expect_error(lambda: live.submit("clipia-mosaic", input={"prompt": "twice"}, idempotency_key="compat-1"),
             409, "idempotency_key_reuse")

# A webhook delivery verifies with the official SDK's helper, against the raw body.
import http.server
import json
import queue
import threading
import urllib.request

received = queue.Queue()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.put((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=hook.serve_forever, daemon=True).start()
request = urllib.request.Request(base + "/v1/webhooks/secret",
                                 headers={"Authorization": "Bearer " + os.environ["CLIPIA_TEST_KEY"]})
secret = json.load(urllib.request.urlopen(request))["secret"]
sent = test.submit("clipia-mosaic", input={"prompt": "hook"},
                   webhook_url=f"http://127.0.0.1:{hook.server_address[1]}/hook")
headers, body = received.get(timeout=30)
assert clipia.verify_signature(secret, headers, body), headers
assert not clipia.verify_signature(secret, headers, body + b" "), "a changed body fails"
event = json.loads(body)
assert event["request_id"] == sent.request_id and event["status"] == "OK", event
hook.shutdown()

print("official SDK", clipia.__version__, "works against this server")
sys.exit(0)
