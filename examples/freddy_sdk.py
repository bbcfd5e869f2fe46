#!/usr/bin/env python3
"""Skein with the published Freddy Python SDK (`aitronos-sdk==0.8.178`, `import aitronos`).

    python3 -m venv .venv && .venv/bin/pip install aitronos-sdk==0.8.178
    SKEIN_BASE_URL=http://127.0.0.1:8080 SKEIN_API_KEY=sk_... .venv/bin/python examples/freddy_sdk.py

Asks a question in a new thread, titles the thread, streams a second answer, lists the thread's
messages and deletes the thread. With `make run` the model is the built-in echo model, which
answers "Echo (N context messages): <your last message>", N counting the history it was sent.
"""
import json
import os
import secrets
import sys

import httpx
from aitronos import Aitronos, InputMessage

BASE_URL = os.environ.get("SKEIN_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY") or sys.exit("set SKEIN_API_KEY (make run prints one)")

client = Aitronos(api_key=API_KEY, base_url=BASE_URL, timeout=30)

# 1. A response in a thread named by the client: Skein creates the thread on first use (a
#    thread created with POST /v1/threads works the same). An input's content is a string or a
#    list of text blocks: {"role": "user", "content": "Hi"} or {"role": "user", "content":
#    [{"type": "text", "text": "Hi"}]} (on the wire the Freddy API also takes
#    {"role": "user", "texts": [{"text": "Hi"}]}).
thread_id = f"trip-{secrets.token_hex(4)}"
first = client.responses.create_response(
    thread_id=thread_id,
    inputs=[InputMessage(role="user", content="Where should I go in June?")],
)
print("answer:", first["output"][0]["content"][0]["text"])

# 2. The thread it created: give it a title.
thread = client.threads.update_thread(thread_id, title="Trip planning")
print(f"thread {thread.id}: {thread.title}")

# 3. A streamed response. The SDK parses every answer as JSON, so stream with httpx (which the
#    SDK is built on): server-sent events, one `data:` line each; the text arrives in
#    `response.content_delta` events, the saved answer in `response.completed`.
streamed = ""
with httpx.stream(
    "POST",
    f"{BASE_URL}/v1/model/response",
    headers={"X-API-Key": API_KEY},
    json={
        "thread_id": thread_id,
        "stream": True,
        "inputs": [{"role": "user", "texts": [{"text": "And in July?"}]}],
    },
    timeout=30,
) as events:
    for line in events.iter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[len("data: "):])
        if event["event"] == "response.content_delta":
            streamed += event["delta"]
            print("  delta:", repr(event["delta"]))
print("streamed:", streamed)

# 4. The thread's messages (plain HTTP: the SDK has no message list), oldest first.
print("message_count:", client.threads.get_thread(thread_id).message_count)
messages = httpx.get(
    f"{BASE_URL}/v1/threads/{thread_id}/messages",
    params={"order": "asc"},
    headers={"X-API-Key": API_KEY},
).json()["data"]
for m in messages:
    text = m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
    print(f"  {m['role']:9} {text}")
print(f"{len(messages)} messages")

# 5. Clean up.
client.threads.delete_thread(thread_id)
print("deleted", thread_id)
