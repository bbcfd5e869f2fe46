#!/usr/bin/env python3
"""Client-compatibility checks for model responses and thread messages: drive a running Skein
server through the published Freddy Python clients (freddy-backend-client==0.1.1 and
aitronos-sdk==5.0.0; install tests/python/requirements.txt).

Plain script, no pytest. Environment:
  SKEIN_BASE_URL  server root, e.g. http://127.0.0.1:8080 (no /v1)
  SKEIN_API_KEY   an API key (sk_...) of one organization/user
  SKEIN_MODEL     optional model name sent with every request (default gpt-4.1); it must route to
                  the built-in echo model, whose answer is
                  "Echo ({n} context messages): {last user text}"

Prints one line per check and ends with "N passed, M failed"; exits 1 if anything failed.
Threads are named by the client (py_<random>) and deleted at the end of each section.
"""
import os
import secrets
import sys
from datetime import datetime
from http import HTTPStatus

import httpx

from freddy_client import AuthenticatedClient
from freddy_client.api.messages import (
    delete_message_v1_threads_thread_id_messages_message_id_delete as f_msg_delete,
    get_thread_messages_v1_threads_thread_id_messages_get as f_msg_list,
    update_message_v1_threads_thread_id_messages_message_id_patch as f_msg_update,
)
from freddy_client.api.responses import create_response_v1_model_response_post as f_respond
from freddy_client.api.threads import (
    delete_thread_v1_threads_thread_id_delete as f_thread_delete,
    get_thread_v1_threads_thread_id_get as f_thread_get,
)
from freddy_client.models import (
    ChatRequest,
    DeleteMessageResponse,
    InputMessage as FInput,
    MessagesListResponse as FMessageList,
    UpdateMessageRequest,
    UpdateMessageResponse,
)
from freddy_client.models.message_response_role import MessageResponseRole
from freddy_client.models.update_message_request_metadata_type_0 import UpdateMessageRequestMetadataType0

from aitronos import Aitronos, InputMessage as AInput
from aitronos.core.api_error import ApiError
from aitronos.types.messages_list_response import MessagesListResponse as AMessageList

BASE_URL = os.environ.get("SKEIN_BASE_URL", "").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY", "")
if not BASE_URL or not API_KEY:
    sys.exit("set SKEIN_BASE_URL and SKEIN_API_KEY")
MODEL = os.environ.get("SKEIN_MODEL", "gpt-4.1")

NO_RETRY = {"max_retries": 0}
Q1 = "My name is Ada."
Q2 = "What is my name?"
A1 = f"Echo (1 context messages): {Q1}"       # first turn: only the new input
A2_PREFIX = "Echo (3 context messages)"        # second turn: Q1, A1 (history) + Q2
ROLES = ["user", "assistant", "user", "assistant"]
MD_PATCH = {"k": "v"}

from harness import aborted, body_of, check, expect, expect_eq, finish  # noqa: E402,F401



def new_thread_id():
    """A client-named thread id (contract section 1: 1-128 chars of [A-Za-z0-9_.:-])."""
    return f"py_{secrets.token_hex(6)}"


def answer_text(resp):
    """output[0].content[0].text of a response object (a dict: both clients return raw JSON)."""
    expect(isinstance(resp, dict), f"response is {type(resp).__name__}, not a JSON object: {str(resp)[:200]}")
    try:
        return resp["output"][0]["content"][0]["text"]
    except (KeyError, IndexError, TypeError) as e:
        raise AssertionError(f"no output[0].content[0].text ({e!r}); response: {str(resp)[:300]}") from None


def expect_response_object(resp, thread_id, previous_response_id=None):
    """The response object of contract section 6."""
    expect(isinstance(resp, dict), f"response is {type(resp).__name__}")
    expect(str(resp.get("id", "")).startswith("resp_"), f"id {resp.get('id')!r}")
    expect_eq(resp.get("object"), "response", "object", ctx=resp)
    expect(type(resp.get("created_at")) is int, f"created_at {resp.get('created_at')!r} is not unix seconds")
    expect_eq(resp.get("status"), "completed", "status", ctx=resp)
    expect_eq(resp.get("thread_id"), thread_id, "thread_id", ctx=resp)
    expect_eq(resp.get("previous_response_id"), previous_response_id, "previous_response_id", ctx=resp)
    out = resp["output"][0]
    expect_eq((out.get("type"), out.get("role")), ("message", "assistant"), "output[0] type/role", ctx=resp)
    expect_eq(out["content"][0].get("type"), "output_text", "output[0].content[0].type", ctx=resp)


# --------------------------------------------------------------------------------------------
# freddy-backend-client 0.1.1
# --------------------------------------------------------------------------------------------
def freddy_section():
    P = "freddy:"
    # Authorization: Bearer sk_... (Skein treats a bearer value with the key prefix as an API key)
    client = AuthenticatedClient(base_url=BASE_URL, token=API_KEY, raise_on_unexpected_status=False,
                                 timeout=httpx.Timeout(30.0))
    tid = new_thread_id()
    st = {}

    def respond(text):
        r = f_respond.sync_detailed(client=client, body=ChatRequest(
            inputs=[FInput(role="user", content=text)], thread_id=tid, model=MODEL))
        expect_eq(r.status_code, HTTPStatus.OK, "POST /v1/model/response status", ctx=r.content)
        return r.parsed

    def first():
        resp = respond(Q1)
        expect_eq(answer_text(resp), A1, "answer text", ctx=resp)
        expect_response_object(resp, tid)
        st["r1"] = resp
    check(f"{P} create_response on new client-named thread {tid} -> 200, output[0].content[0].text", first)

    def second():
        resp = respond(Q2)
        text = answer_text(resp)
        expect(text.startswith(A2_PREFIX), f"answer {text!r} does not start with {A2_PREFIX!r} (history not injected)")
        expect_eq(text, f"{A2_PREFIX}: {Q2}", "answer text")
        expect_response_object(resp, tid)
        st["r2"] = resp
    check(f"{P} create_response same thread -> '{A2_PREFIX}' (history injected)", second)

    def list_messages():
        r = f_msg_list.sync_detailed(tid, client=client)
        expect_eq(r.status_code, 200, "list messages status", ctx=r.content)
        p = r.parsed
        expect(isinstance(p, FMessageList), f"parsed is {type(p).__name__}")
        expect_eq(len(p.data), 4, "message count", ctx=r.content)
        expect_eq([m.role for m in p.data], [MessageResponseRole(x) for x in ROLES], "roles (oldest first)")
        expect(all(isinstance(m.created_at, datetime) for m in p.data), "created_at parsed as datetime")
        expect(all(m.thread_id == tid for m in p.data), "thread_id on every message")
        expect_eq([m.content for m in p.data], [Q1, A1, Q2, f"{A2_PREFIX}: {Q2}"], "contents")
        expect_eq(p.has_more, False, "has_more")
        expect_eq((p.first_id, p.last_id), (p.data[0].id, p.data[-1].id), "first_id/last_id")
        if "r2" in st:
            expect_eq(p.data[3].id, st["r2"]["output"][0]["id"], "assistant message id == output[0].id")
        st["msgs"] = [m.id for m in p.data]
    check(f"{P} get_thread_messages -> 4 messages user/assistant/user/assistant", list_messages)

    def patch():
        mid = st["msgs"][0]
        r = f_msg_update.sync_detailed(tid, mid, client=client, body=UpdateMessageRequest(
            content="edited", metadata=UpdateMessageRequestMetadataType0.from_dict(MD_PATCH)))
        expect_eq(r.status_code, 200, "patch status", ctx=r.content)
        m = r.parsed
        expect(isinstance(m, UpdateMessageResponse), f"parsed is {type(m).__name__}")
        expect_eq(m.id, mid, "id")
        expect_eq(m.content, "edited", "content")
        expect_eq(m.role, MessageResponseRole.USER, "role")
        expect_eq(m.metadata.to_dict(), MD_PATCH, "metadata")
        expect(isinstance(m.updated_at, datetime), f"updated_at {m.updated_at!r}")
        again = f_msg_list.sync_detailed(tid, client=client).parsed
        expect_eq(again.data[0].content, "edited", "content on re-list")
    check(f"{P} update_message content='edited' metadata={MD_PATCH} -> 200", patch)

    def delete():
        mid = st["msgs"][-1]
        r = f_msg_delete.sync_detailed(tid, mid, client=client)
        expect_eq(r.status_code, 200, "delete status", ctx=r.content)
        d = r.parsed
        expect(isinstance(d, DeleteMessageResponse), f"parsed is {type(d).__name__}")
        expect_eq((d.id, d.deleted, d.object_), (mid, True, "thread.message.deleted"), "delete body")
        p = f_msg_list.sync_detailed(tid, client=client).parsed
        expect(isinstance(p, FMessageList), f"list parsed is {type(p).__name__}")
        expect_eq([m.id for m in p.data], st["msgs"][:3], "messages after delete")
        t = f_thread_get.sync_detailed(tid, client=client)
        expect_eq(t.status_code, 200, "get thread status", ctx=t.content)
        expect_eq(t.parsed.message_count, 3, "thread message_count")
    check(f"{P} delete_message -> 200, list then has 3", delete)

    def cleanup():
        r = f_thread_delete.sync_detailed(tid, client=client)
        expect_eq(r.status_code, 204, "delete thread status", ctx=r.content)
    check(f"{P} delete thread {tid} (cleanup)", cleanup)

    client.get_httpx_client().close()


# --------------------------------------------------------------------------------------------
# aitronos-sdk 5.0.0
# --------------------------------------------------------------------------------------------
def aitronos_section():
    P = "aitronos:"
    client = Aitronos(base_url=BASE_URL, api_key=API_KEY, timeout=30)   # sends x-api-key
    tid = new_thread_id()
    st = {}

    def respond(text, **kw):
        try:
            raw = client.responses.with_raw_response.create_response(
                inputs=[AInput(role="user", content=text)], model=MODEL, request_options=NO_RETRY, **kw)
        except ApiError as e:
            raise AssertionError(f"ApiError {e.status_code}: {str(e.body)[:300]}") from None
        expect_eq(raw.status_code, 200, "POST /v1/model/response status")
        return raw.data

    def first():
        resp = respond(Q1, thread_id=tid)
        expect_eq(answer_text(resp), A1, "answer text", ctx=resp)
        expect_response_object(resp, tid)
    check(f"{P} responses.create_response on new client-named thread {tid} -> 200", first)

    def second():
        resp = respond(Q2, thread_id=tid)
        text = answer_text(resp)
        expect(text.startswith(A2_PREFIX), f"answer {text!r} does not start with {A2_PREFIX!r} (history not injected)")
        expect_eq(text, f"{A2_PREFIX}: {Q2}", "answer text")
        expect_response_object(resp, tid)
    check(f"{P} responses.create_response same thread -> '{A2_PREFIX}' (history injected)", second)

    def list_messages():
        p = client.messages.get_thread_messages(tid, request_options=NO_RETRY)
        expect(isinstance(p, AMessageList), f"parsed is {type(p).__name__}")
        expect_eq(len(p.data), 4, "message count", ctx=p)
        expect_eq([str(m.role) for m in p.data], ROLES, "roles (oldest first)")
        expect(all(isinstance(m.created_at, datetime) for m in p.data), "created_at parsed as datetime")
        expect_eq([m.content for m in p.data], [Q1, A1, Q2, f"{A2_PREFIX}: {Q2}"], "contents")
        expect_eq(p.has_more, False, "has_more")
    check(f"{P} messages.get_thread_messages -> 4 messages user/assistant/user/assistant", list_messages)

    def rewind_after():
        # previous_message_id: the thread continues after the first answer; Q2 and its answer go.
        msgs = client.messages.get_thread_messages(tid, request_options=NO_RETRY).data
        resp = respond("Rewound", thread_id=tid, previous_message_id=msgs[1].id)
        expect_eq(answer_text(resp), f"{A2_PREFIX}: Rewound", "answer text (history cut after the first answer)")
        after = client.messages.get_thread_messages(tid, request_options=NO_RETRY).data
        expect_eq([m.content for m in after], [Q1, A1, "Rewound", f"{A2_PREFIX}: Rewound"], "contents")
        st["rewound_user"] = after[2].id
    check(f"{P} create_response(previous_message_id=<first answer>) -> the later turn is gone", rewind_after)

    def rewind_edit():
        # edit_message_id: the user message "Rewound" and its answer are replaced.
        resp = respond("Edited", thread_id=tid, edit_message_id=st["rewound_user"])
        expect_eq(answer_text(resp), f"{A2_PREFIX}: Edited", "answer text (the edited input in its place)")
        after = client.messages.get_thread_messages(tid, request_options=NO_RETRY).data
        expect_eq([m.content for m in after], [Q1, A1, "Edited", f"{A2_PREFIX}: Edited"], "contents")
    check(f"{P} create_response(edit_message_id=<user message>) -> replaced", rewind_edit)

    def chain():
        r1 = respond(Q1)
        expect_response_object(r1, None)
        expect_eq(answer_text(r1), A1, "first answer text", ctx=r1)
        r2 = respond(Q2, previous_response_id=r1["id"])
        text = answer_text(r2)
        expect(text.startswith(A2_PREFIX), f"answer {text!r} does not start with {A2_PREFIX!r} (chain not followed)")
        expect_eq(text, f"{A2_PREFIX}: {Q2}", "answer text")
        expect_response_object(r2, None, previous_response_id=r1["id"])
    check(f"{P} thread-less response, then previous_response_id chain -> '{A2_PREFIX}'", chain)

    def cleanup():
        raw = client.threads.with_raw_response.delete_thread(tid, request_options=NO_RETRY)
        expect_eq(raw.status_code, 204, "delete thread status")
    check(f"{P} delete thread {tid} (cleanup)", cleanup)


for section in (freddy_section, aitronos_section):
    try:
        section()
    except Exception as e:  # noqa: BLE001 - a broken section must not hide the other one
        aborted(e)

finish()
