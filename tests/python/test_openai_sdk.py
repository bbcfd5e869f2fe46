#!/usr/bin/env python3
"""Client-compatibility check of OpenAI's own Python SDK, `openai==3.57.0` (its own venv,
tests/python/requirements-openai.txt), against Skein's OpenAI dialect: models, conversations
and conversation items, each through the SDK's own methods.

The client is built with `_strict_response_validation=True`, so every answer is validated
against the SDK's pydantic models (a missing or mistyped field raises
APIResponseValidationError), and with `max_retries=0`, so a failure is seen once.

A conversation is a Freddy thread: the script also reads it back through `/v1/threads`
(stdlib urllib, `X-API-Key`), drives a thread made by `POST /v1/threads` through the SDK, and
lists conversations with Skein's extension `GET /v1/conversations`.

Plain script, no pytest. Environment: SKEIN_BASE_URL (server root), SKEIN_API_KEY.
Prints one line per check and ends with "N passed, M failed"; exits 1 if anything failed.
"""
import json
import os
import secrets
import sys
import urllib.error
import urllib.request

import openai
from openai import OpenAI
from openai.types import Model
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItemList,
    Message,
)

from harness import aborted, check, expect, expect_eq, finish  # noqa: E402

BASE_URL = os.environ.get("SKEIN_BASE_URL", "").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY", "")
if not BASE_URL or not API_KEY:
    sys.exit("set SKEIN_BASE_URL and SKEIN_API_KEY")


def make_client(api_key=API_KEY):
    return OpenAI(base_url=BASE_URL + "/v1", api_key=api_key, max_retries=0,
                  _strict_response_validation=True)


client = make_client()
RUN = secrets.token_hex(4)
FIRST = f"hello from the openai sdk {RUN}"
SECOND = f"hello back {RUN}"
MORE = [f"third {RUN}", f"fourth {RUN}", f"fifth {RUN}"]
state = {}


def freddy(method, path, body=None):
    """A plain Freddy-dialect call (stdlib only); returns (status, parsed JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE_URL + path, data=data, method=method,
                                 headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def text_of(item):
    expect(isinstance(item, Message), f"item is {type(item).__name__}, not a message")
    return "".join(part.text for part in item.content)


def all_items(conv_id, order="asc"):
    """Every item, one page of up to 100."""
    page = client.conversations.items.list(conv_id, limit=100, order=order)
    expect_eq(page.has_more, False, "has_more of a page of 100")
    return list(page.data)


def expect_raises(cls, fn, what):
    try:
        fn()
    except cls as e:
        return e
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{what}: expected {cls.__name__}, got {type(e).__name__}: {e}") from e
    raise AssertionError(f"{what}: expected {cls.__name__}, nothing was raised")


# ---- models ---------------------------------------------------------------------------------

def models_list():
    page = client.models.list()
    models = list(page)
    expect(models, "models.list() is empty")
    for m in models:
        expect(isinstance(m, Model), f"entry is {type(m).__name__}")
        expect(isinstance(m.id, str) and m.id, f"id {m.id!r}")
        expect_eq(m.object, "model", f"object of {m.id}")
        expect(isinstance(m.created, int) and m.created > 0, f"created {m.created!r}")
        expect(isinstance(m.owned_by, str) and m.owned_by, f"owned_by {m.owned_by!r}")
    by_id = {m.id: m for m in models}
    expect("default" in by_id, f"'default' among {sorted(by_id)}")
    expect_eq(by_id["default"].owned_by, "echo", "the built-in config routes default to echo")


def models_retrieve():
    m = client.models.retrieve("anything-at-all")
    expect(isinstance(m, Model), f"answer is {type(m).__name__}")
    expect_eq(m.id, "anything-at-all", "id")
    expect_eq(m.object, "model", "object")
    expect_eq(m.owned_by, "echo", "owned_by (served by the default route)")
    expect(isinstance(m.created, int), f"created {m.created!r}")


# ---- conversations --------------------------------------------------------------------------

def conversation_create():
    conv = client.conversations.create(
        metadata={"topic": "billing", "run": RUN},
        items=[
            {"type": "message", "role": "user", "content": FIRST},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": SECOND, "annotations": []}]},
        ],
    )
    expect(isinstance(conv, Conversation), f"answer is {type(conv).__name__}")
    expect(conv.id.startswith("conv_"), f"id {conv.id!r}")
    expect_eq(conv.object, "conversation", "object")
    expect(isinstance(conv.created_at, int) and conv.created_at > 0, f"created_at {conv.created_at!r}")
    expect_eq(conv.metadata, {"topic": "billing", "run": RUN}, "metadata echoed")
    state["conv"] = conv.id
    state["created_at"] = conv.created_at


def conversation_retrieve():
    conv = client.conversations.retrieve(state["conv"])
    expect_eq(conv.id, state["conv"], "id")
    expect_eq(conv.object, "conversation", "object")
    expect_eq(conv.created_at, state["created_at"], "created_at")
    expect_eq(conv.metadata, {"topic": "billing", "run": RUN}, "metadata")
    texts = [text_of(i) for i in all_items(state["conv"])]
    expect_eq(texts, [FIRST, SECOND], "the items given at creation, stored in order")


def conversation_update():
    conv = client.conversations.update(state["conv"], metadata={"topic": "refunds", "tier": "gold"})
    expect_eq(conv.id, state["conv"], "id")
    expect_eq(conv.metadata, {"topic": "refunds", "tier": "gold"}, "metadata replaced (old keys gone)")
    again = client.conversations.retrieve(state["conv"])
    expect_eq(again.metadata, {"topic": "refunds", "tier": "gold"}, "metadata after retrieve")


# ---- items ----------------------------------------------------------------------------------

def items_create():
    added = client.conversations.items.create(
        state["conv"],
        items=[
            {"role": "user", "content": MORE[0]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": MORE[1], "annotations": []}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": MORE[2]}]},
        ],
    )
    expect(isinstance(added, ConversationItemList), f"answer is {type(added).__name__}")
    expect_eq(added.object, "list", "object")
    expect_eq(len(added.data), 3, "stored items")
    expect_eq([text_of(i) for i in added.data], MORE, "texts")
    expect_eq([i.role for i in added.data], ["user", "assistant", "user"], "roles")
    expect_eq([i.status for i in added.data], ["completed"] * 3, "status")
    expect_eq([p.type for i in added.data for p in i.content], ["input_text", "output_text", "input_text"],
              "content part types")
    ids = [i.id for i in added.data]
    expect(all(i.startswith("msg_") for i in ids), f"ids {ids}")
    expect_eq(added.first_id, ids[0], "first_id")
    expect_eq(added.last_id, ids[-1], "last_id")
    expect_eq(added.has_more, False, "has_more")
    state["added"] = ids


def items_list_paginates_ascending():
    page = client.conversations.items.list(state["conv"], limit=2, order="asc")
    sizes = [len(p.data) for p in page.iter_pages()]
    expect_eq(sizes, [2, 2, 1], "page sizes of 5 items, 2 a page")
    texts = [text_of(i) for i in client.conversations.items.list(state["conv"], limit=2, order="asc")]
    expect_eq(texts, [FIRST, SECOND] + MORE, "auto-pagination returns every item, oldest first")
    ids = [i.id for i in client.conversations.items.list(state["conv"], limit=2, order="asc")]
    expect_eq(ids[2:], state["added"], "the ids items.create returned")
    state["all_ids"] = ids


def items_list_defaults_to_newest_first():
    page = client.conversations.items.list(state["conv"])
    expect_eq([i.id for i in page.data], list(reversed(state["all_ids"])), "default order is desc")
    desc = [text_of(i) for i in client.conversations.items.list(state["conv"], limit=2, order="desc")]
    expect_eq(desc, list(reversed([FIRST, SECOND] + MORE)), "desc with auto-pagination")


def items_retrieve():
    first = client.conversations.items.retrieve(state["all_ids"][0], conversation_id=state["conv"])
    expect_eq(first.id, state["all_ids"][0], "id")
    expect_eq((first.type, first.role, first.status), ("message", "user", "completed"), "type/role/status")
    expect_eq(text_of(first), FIRST, "text")
    second = client.conversations.items.retrieve(state["all_ids"][1], conversation_id=state["conv"])
    expect_eq(second.role, "assistant", "role")
    expect_eq([(p.type, p.text, p.annotations) for p in second.content], [("output_text", SECOND, [])],
              "an assistant message answers output_text with annotations")


def items_delete():
    gone = state["added"][1]
    conv = client.conversations.items.delete(gone, conversation_id=state["conv"])
    expect(isinstance(conv, Conversation), f"answer is {type(conv).__name__}")
    expect_eq(conv.id, state["conv"], "delete answers the conversation")
    e = expect_raises(openai.NotFoundError,
                      lambda: client.conversations.items.retrieve(gone, conversation_id=state["conv"]),
                      "retrieve of the deleted item")
    expect_eq(e.code, "item_not_found", "code")
    texts = [text_of(i) for i in all_items(state["conv"])]
    expect_eq(texts, [FIRST, SECOND, MORE[0], MORE[2]], "the other items remain")


# ---- errors ---------------------------------------------------------------------------------

def unknown_conversation():
    e = expect_raises(openai.NotFoundError, lambda: client.conversations.retrieve("conv_doesnotexist0000000000"),
                      "retrieve of an unknown conversation")
    expect_eq(e.status_code, 404, "status")
    expect_eq(e.code, "conversation_not_found", "code")
    expect_eq(e.type, "invalid_request_error", "type")


def bad_api_key():
    bad = make_client("sk_" + "x" * 48)
    e = expect_raises(openai.AuthenticationError, lambda: bad.conversations.retrieve(state["conv"]),
                      "a bad api key")
    expect_eq(e.status_code, 401, "status")
    expect_eq(e.code, "invalid_api_key", "code")


def bogus_role():
    e = expect_raises(openai.BadRequestError,
                      lambda: client.conversations.items.create(
                          state["conv"], items=[{"type": "message", "role": "bogus", "content": "x"}]),
                      "role bogus")
    expect_eq(e.status_code, 400, "status")
    expect_eq(e.param, "items[0].role", "param")


def function_call_item():
    e = expect_raises(openai.BadRequestError,
                      lambda: client.conversations.items.create(
                          state["conv"],
                          items=[{"type": "function_call", "call_id": "call_1", "name": "get_weather",
                                  "arguments": "{\"city\": \"Zurich\"}"}]),
                      "a function_call item")
    expect_eq(e.code, "unsupported_feature", "code")


def system_role_item():
    e = expect_raises(openai.BadRequestError,
                      lambda: client.conversations.create(
                          items=[{"type": "message", "role": "system", "content": "be brief"}]),
                      "a system message")
    expect_eq(e.code, "unsupported_feature", "code")


def too_many_items():
    items = [{"role": "user", "content": f"n{i}"} for i in range(21)]
    expect_raises(openai.BadRequestError, lambda: client.conversations.items.create(state["conv"], items=items),
                  "21 items")
    expect_eq(len(all_items(state["conv"])), 4, "nothing of the refused requests was stored")


# ---- the same store through the Freddy dialect ----------------------------------------------

def conversation_is_a_thread():
    status, threads = freddy("GET", "/v1/threads?limit=100")
    expect_eq(status, 200, "GET /v1/threads status", ctx=threads)
    listed = {t["id"]: t for t in threads["data"]}
    expect(state["conv"] in listed, f"{state['conv']} among the threads {sorted(listed)}")
    expect_eq(listed[state["conv"]]["metadata"], {"topic": "refunds", "tier": "gold"}, "thread metadata")
    status, msgs = freddy("GET", f"/v1/threads/{state['conv']}/messages?order=asc&limit=100")
    expect_eq(status, 200, "GET messages status", ctx=msgs)
    expect_eq([(m["id"], m["role"], m["content"]) for m in msgs["data"]],
              [(i.id, i.role, text_of(i)) for i in all_items(state["conv"])],
              "the thread's messages are the conversation's items")


def thread_is_a_conversation():
    status, thread = freddy("POST", "/v1/threads", {"metadata": {"made_by": "freddy"}})
    expect_eq(status, 201, "POST /v1/threads status", ctx=thread)
    tid = thread["id"]
    conv = client.conversations.retrieve(tid)
    expect_eq(conv.id, tid, "id")
    expect_eq(conv.metadata, {"made_by": "freddy"}, "metadata")
    added = client.conversations.items.create(tid, items=[{"role": "user", "content": f"to a thread {RUN}"}])
    expect_eq([text_of(i) for i in added.data], [f"to a thread {RUN}"], "added")
    status, msgs = freddy("GET", f"/v1/threads/{tid}/messages")
    expect_eq(status, 200, "GET messages status", ctx=msgs)
    expect_eq([(m["id"], m["content"]) for m in msgs["data"]], [(added.first_id, f"to a thread {RUN}")],
              "the item is the thread's message")
    state["thread"] = tid


def skein_lists_conversations():
    listed = client.get("/conversations", cast_to=object, options={"params": {"limit": 100}})
    expect(isinstance(listed, dict), f"answer is {type(listed).__name__}")
    expect_eq(listed.get("object"), "list", "object")
    ids = [c["id"] for c in listed["data"]]
    for want in (state["conv"], state["thread"]):
        expect(want in ids, f"{want} among {ids}")
    for c in listed["data"]:
        Conversation.model_validate(c, strict=False)
        expect_eq(c["object"], "conversation", f"object of {c['id']}")


def conversation_delete():
    deleted = client.conversations.delete(state["conv"])
    expect(isinstance(deleted, ConversationDeletedResource), f"answer is {type(deleted).__name__}")
    expect_eq((deleted.id, deleted.object, deleted.deleted), (state["conv"], "conversation.deleted", True),
              "deleted resource")
    e = expect_raises(openai.NotFoundError, lambda: client.conversations.retrieve(state["conv"]),
                      "retrieve after delete")
    expect_eq(e.code, "conversation_not_found", "code")


CHECKS = [
    ("models.list lists the routes, default on echo", models_list),
    ("models.retrieve of any name uses the default route", models_retrieve),
    ("conversations.create with metadata and two items", conversation_create),
    ("conversations.retrieve", conversation_retrieve),
    ("conversations.update replaces the metadata", conversation_update),
    ("items.create stores three items", items_create),
    ("items.list auto-paginates ascending, 2 a page", items_list_paginates_ascending),
    ("items.list defaults to newest first", items_list_defaults_to_newest_first),
    ("items.retrieve", items_retrieve),
    ("items.delete answers the conversation and the item is gone", items_delete),
    ("an unknown conversation raises NotFoundError conversation_not_found", unknown_conversation),
    ("a bad api key raises AuthenticationError", bad_api_key),
    ("role bogus raises BadRequestError on items[0].role", bogus_role),
    ("a function_call item raises BadRequestError unsupported_feature", function_call_item),
    ("a system message raises BadRequestError unsupported_feature", system_role_item),
    ("21 items raise BadRequestError", too_many_items),
    ("the conversation is a thread with the same messages", conversation_is_a_thread),
    ("a thread from POST /v1/threads is a conversation", thread_is_a_conversation),
    ("GET /v1/conversations lists the conversations", skein_lists_conversations),
    ("conversations.delete, then retrieve raises NotFoundError", conversation_delete),
]

if __name__ == "__main__":
    try:
        for name, fn in CHECKS:
            check(name, fn)
    except Exception as e:  # noqa: BLE001
        aborted(e)
    finish()
