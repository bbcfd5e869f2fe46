#!/usr/bin/env python3
"""Client-compatibility check of the newest Freddy SDK, `aitronos-sdk==0.8.178` (its own venv,
tests/python/requirements-sdk178.txt): a streamed response is started with plain httpx (the
SDK's dependency) and left after a few frames; then the SDK's own
`client.responses.reconnect_stream(thread_id, last_event_id=N)` picks the stream up again.

The SDK reads the reconnect answer as one JSON document (it is Fern-generated and sends
`X-Fern-Language`), so Skein answers it with `{"thread_id", "response_id", "events": [...]}`
once the response has ended; SSE clients get the same events as a stream.

It also drives the per-user thread settings through `client.threads.get_thread_user_state` and
`patch_thread_user_state`.

Plain script, no pytest. Environment: SKEIN_BASE_URL (server root), SKEIN_API_KEY.
Prints one line per check and ends with "N passed, M failed"; exits 1 if anything failed.
"""
import json
import os
import secrets
import sys

import httpx
from aitronos import Aitronos

from harness import check, expect, expect_eq, finish  # noqa: E402

BASE_URL = os.environ.get("SKEIN_BASE_URL", "").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY", "")
if not BASE_URL or not API_KEY:
    sys.exit("set SKEIN_BASE_URL and SKEIN_API_KEY")

TID = f"py178_{secrets.token_hex(4)}"
QUESTION = "Tell me everything about reconnecting streams"
state = {}


def first_frames():
    """Start a streamed response and leave after the second frame (the client 'lost' it)."""
    seen = []
    with httpx.Client(base_url=BASE_URL, headers={"X-API-Key": API_KEY}, timeout=30) as http:
        body = {"thread_id": TID, "stream": True,
                "inputs": [{"role": "user", "texts": [{"text": QUESTION}]}]}
        with http.stream("POST", "/v1/model/response", json=body) as r:
            expect_eq(r.status_code, 200, "status")
            frame = {}
            for line in r.iter_lines():
                if line.startswith("id: "):
                    frame["id"] = int(line[4:])
                elif line.startswith("data: "):
                    frame["data"] = json.loads(line[6:])
                elif line == "" and frame:
                    expect_eq(frame.get("id"), frame["data"]["sequence_number"], "id line")
                    seen.append(frame["data"])
                    frame = {}
                    if len(seen) == 2:
                        break
    expect_eq(seen[0]["event"], "response.created", "first event")
    state["seen"] = seen
    state["response_id"] = seen[0]["response_id"]


def reconnect_after_the_last_seen_event():
    client = Aitronos(api_key=API_KEY, base_url=BASE_URL, timeout=30)
    last = state["seen"][-1]["sequence_number"]
    answer = client.responses.reconnect_stream(TID, last_event_id=last)
    expect(isinstance(answer, dict), f"answer is {type(answer).__name__}: {answer!r:.200}")
    events = answer["events"]
    expect_eq(answer["thread_id"], TID, "thread_id")
    expect_eq(answer["response_id"], state["response_id"], "response_id")
    numbers = [e["sequence_number"] for e in events]
    expect_eq(numbers, list(range(last + 1, last + 1 + len(events))), "the events after the last seen, none missing")
    expect_eq(events[-1]["event"], "response.completed", "last event")
    text = "".join(e["delta"] for e in state["seen"] + events if e["event"] == "response.content_delta")
    expect_eq(text, f"Echo (1 context messages): {QUESTION}", "the deltas before and after add up to the answer")
    expect_eq(events[-1]["response"]["id"], state["response_id"], "completed response id")


def reconnect_from_the_start():
    client = Aitronos(api_key=API_KEY, base_url=BASE_URL, timeout=30)
    answer = client.responses.reconnect_stream(TID)
    expect_eq(answer["events"][0]["event"], "response.created", "replayed from the first event")


def user_state():
    client = Aitronos(api_key=API_KEY, base_url=BASE_URL, timeout=30)
    start = client.threads.get_thread_user_state(TID)
    expect_eq(start.thread_id, TID, "thread_id")
    expect_eq(start.state.model_override, None, "model_override before")
    patched = client.threads.patch_thread_user_state(
        TID, model_override="my-model", disabled_tools=["web_search"],
        tool_conflict_choices={"search": "web_search"})
    expect_eq(patched.state.model_override, "my-model", "model_override")
    expect_eq(patched.state.disabled_tools, ["web_search"], "disabled_tools")
    cleared = client.threads.patch_thread_user_state(TID, disabled_tools=None)
    expect_eq(cleared.state.disabled_tools, None, "disabled_tools cleared by an explicit null")
    expect_eq(cleared.state.model_override, "my-model", "model_override kept (absent from the patch)")
    # The override picks the model of the thread's next response.
    with httpx.Client(base_url=BASE_URL, headers={"X-API-Key": API_KEY}, timeout=30) as http:
        r = http.post("/v1/model/response", json={"thread_id": TID, "inputs": [{"role": "user", "content": "which model?"}]})
        expect_eq(r.status_code, 200, "status")
        expect_eq(r.json()["model"], "my-model", "the response's model")


def cleanup():
    with httpx.Client(base_url=BASE_URL, headers={"X-API-Key": API_KEY}, timeout=30) as http:
        expect_eq(http.delete(f"/v1/threads/{TID}").status_code, 204, "delete")


check(f"a streamed response on {TID}, left after two frames (raw httpx)", first_frames)
check("client.responses.reconnect_stream(thread_id, last_event_id=N) -> the rest, then completed",
      reconnect_after_the_last_seen_event)
check("client.responses.reconnect_stream(thread_id) -> replay from response.created", reconnect_from_the_start)
check("threads.get_thread_user_state / patch_thread_user_state (merge, null clears; model_override used)", user_state)
check(f"delete thread {TID} (cleanup, raw httpx)", cleanup)
finish()
