#!/usr/bin/env python3
"""Client-compatibility checks: drive a running Skein server's POST /v1/model/response through the
published `aitronos-freddy==0.1.2` SDK (`import freddy`). It pins an older httpx, so install
tests/python/requirements-freddy.txt into its own venv, apart from requirements.txt.

The SDK sends camelCase request keys (threadId, previousResponseId, maxTokens, ...) with
`X-API-Key`, and parses the answer into its pydantic `ModelResponse`.

Plain script, no pytest. Environment:
  SKEIN_BASE_URL  server root, e.g. http://127.0.0.1:8080 (no /v1)
  SKEIN_API_KEY   an API key (sk_...) of one organization/user
  SKEIN_MODEL     optional model name (default gpt-4.1); it must route to the built-in echo model,
                  whose answer is "Echo ({n} context messages): {last user text}"

Prints one line per check and ends with "N passed, M failed"; exits 1 if anything failed.
The client-named thread (py_<random>) is deleted at the end.
"""
import os
import secrets
import sys

from freddy import APIError, FreddyClient
from freddy.models import ModelResponse

BASE_URL = os.environ.get("SKEIN_BASE_URL", "").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY", "")
if not BASE_URL or not API_KEY:
    sys.exit("set SKEIN_BASE_URL and SKEIN_API_KEY")
MODEL = os.environ.get("SKEIN_MODEL", "gpt-4.1")

Q1 = "My name is Ada."
Q2 = "What is my name?"
A1 = f"Echo (1 context messages): {Q1}"       # first turn: only the new input
A2_PREFIX = "Echo (3 context messages)"        # second turn: Q1, A1 (history) + Q2

from harness import aborted, body_of, check, expect, expect_eq, finish  # noqa: E402,F401



def create(client, inputs, **kw):
    """client.responses.create(...) -> ModelResponse; an APIError becomes a readable failure."""
    try:
        r = client.responses.create(model=MODEL, inputs=inputs, **kw)
    except APIError as e:
        raise AssertionError(f"APIError {e.status_code}: {e.message} {str(e.response)[:300]}") from None
    expect(isinstance(r, ModelResponse), f"parsed is {type(r).__name__}")
    expect(r.id.startswith("resp_"), f"id {r.id!r}")
    expect_eq(r.object, "response", "object")
    expect(isinstance(r.created_at, int), f"created_at {r.created_at!r}")
    expect_eq(r.status, "completed", "status")
    expect_eq(r.model, MODEL, "model")
    expect(r.output, "output is empty")
    expect_eq((r.output[0].type, r.output[0].role), ("message", "assistant"), "output[0] type/role")
    expect(r.output[0].content, "output[0].content is empty")
    expect_eq(r.error, None, "error")
    return r


def texts(text):
    """The SDK's documented input shape: {"role", "texts": [{"text"}]}."""
    return [{"role": "user", "texts": [{"text": text}]}]


def main():
    client = FreddyClient(api_key=API_KEY, base_url=BASE_URL, timeout=30.0)   # sends X-API-Key
    tid = f"py_{secrets.token_hex(6)}"
    st = {}

    def first():
        r = create(client, texts(Q1), thread_id=tid)          # sent as "threadId"
        expect_eq(r.output[0].content[0].text, A1, "answer text")
        expect_eq(r.previous_response_id, None, "previous_response_id")
    check(f"responses.create threadId={tid} (new, client-named) -> ModelResponse with echo answer", first)

    def second():
        r = create(client, texts(Q2), thread_id=tid)
        text = r.output[0].content[0].text
        expect(text.startswith(A2_PREFIX), f"answer {text!r} does not start with {A2_PREFIX!r} (history not injected)")
        expect_eq(text, f"{A2_PREFIX}: {Q2}", "answer text")
    check(f"responses.create same threadId -> '{A2_PREFIX}' (history injected)", second)

    def thread_less():
        # content as a plain string, the other input shape the SDK's Message type allows
        r = create(client, [{"role": "user", "content": Q1}])
        expect_eq(r.output[0].content[0].text, A1, "answer text")
        st["r1"] = r.id
    check("responses.create without a thread -> ModelResponse", thread_less)

    def chained():
        expect("r1" in st, "no first thread-less response to chain from")
        r = create(client, [{"role": "user", "content": Q2}], previousResponseId=st["r1"])
        text = r.output[0].content[0].text
        expect(text.startswith(A2_PREFIX), f"answer {text!r} does not start with {A2_PREFIX!r} (chain not followed)")
        expect_eq(text, f"{A2_PREFIX}: {Q2}", "answer text")
        expect_eq(r.previous_response_id, st["r1"], "previous_response_id")
    check(f"responses.create previousResponseId=<first> -> '{A2_PREFIX}'", chained)

    def cleanup():
        # the SDK has no thread API; use its own httpx client (same X-API-Key header)
        r = client._client.delete(f"/v1/threads/{tid}")
        expect_eq(r.status_code, 204, "DELETE /v1/threads/{id} status", ctx=r.text)
    check(f"delete thread {tid} (cleanup, raw httpx)", cleanup)

    client.close()


try:
    main()
except Exception as e:  # noqa: BLE001 - report instead of a traceback
    aborted(e)

finish()
