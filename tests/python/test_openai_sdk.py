#!/usr/bin/env python3
"""Client-compatibility check of OpenAI's own Python SDK, `openai==3.57.0` (its own venv,
tests/python/requirements-openai.txt), against Skein's OpenAI dialect: models, conversations,
conversation items and responses (plain, in a conversation, chained, streamed, retrieved,
listed and deleted), each through the SDK's own methods.

Answers come from the built-in echo model (the default route), which replies
"Echo (N context messages): <last user text>", N being the number of messages it received
(instructions, history and inputs), so the counts show what the server put in front.

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
from openai.types.responses import (
    Response,
    ResponseFunctionToolCallItem,
    ResponseFunctionToolCallOutputItem,
    ResponseOutputMessage,
)
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


TOOL_ITEMS = [
    {"type": "function_call", "call_id": "call_1", "name": "get_weather",
     "arguments": "{\"city\": \"Zurich\"}", "status": "completed"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny", "status": "completed"},
]


def function_call_items():
    conv = client.conversations.create(items=[{"role": "user", "content": "weather in Zurich?"}] + TOOL_ITEMS)
    added = client.conversations.items.list(conv.id, order="asc").data
    expect_eq([i.type for i in added], ["message", "function_call", "function_call_output"], "item types")
    call, output = added[1], added[2]
    expect(isinstance(call, ResponseFunctionToolCallItem), f"call is {type(call).__name__}")
    expect(isinstance(output, ResponseFunctionToolCallOutputItem), f"output is {type(output).__name__}")
    expect_eq((call.call_id, call.name, call.arguments, call.status),
              ("call_1", "get_weather", "{\"city\": \"Zurich\"}", "completed"), "the call as given")
    expect_eq((output.call_id, output.output), ("call_1", "sunny"), "the output as given")
    again = client.conversations.items.retrieve(call.id, conversation_id=conv.id)
    expect_eq(again.model_dump(exclude_none=True), call.model_dump(exclude_none=True), "items.retrieve")
    more = client.conversations.items.create(conv.id, items=[
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "looked it up"}]}])
    expect_eq(more.data[0].type, "reasoning", "a reasoning item is kept")
    # The Freddy dialect sees the one message.
    status, msgs = freddy("GET", f"/v1/threads/{conv.id}/messages")
    expect_eq(status, 200, "GET messages status", ctx=msgs)
    expect_eq([m["content"] for m in msgs["data"]], ["weather in Zurich?"], "the thread's messages")
    # The model gets the call and its output (the echo model counts them), not the reasoning.
    r = client.responses.create(model="default", conversation=conv.id, input="and tomorrow?")
    expect_eq(r.output_text, echo(4, "and tomorrow?"), "the answer counts message, call, output, input")
    expect_eq(len(all_items_of(conv.id)), 6, "items after the turn")
    client.conversations.delete(conv.id)


def all_items_of(conv_id):
    """Every item of any type, one page of up to 100."""
    return list(client.conversations.items.list(conv_id, limit=100, order="asc").data)


def item_reference():
    e = expect_raises(openai.BadRequestError,
                      lambda: client.conversations.items.create(
                          state["conv"], items=[{"type": "item_reference", "id": "msg_1"}]),
                      "an item_reference item")
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


# ---- responses ------------------------------------------------------------------------------

def echo(n, text):
    """What the echo model answers when it received `n` messages, the last user one `text`."""
    return f"Echo ({n} context messages): {text}"


def expect_response(r, text, what="response"):
    """A completed, stored-shape response whose one output message says `text`."""
    expect(isinstance(r, Response), f"{what} is {type(r).__name__}")
    expect(r.id.startswith("resp_"), f"{what} id {r.id!r}")
    expect_eq(r.object, "response", f"{what} object")
    expect_eq(r.status, "completed", f"{what} status")
    expect_eq(r.model, "default", f"{what} model")
    expect_eq(r.error, None, f"{what} error")
    expect_eq(len(r.output), 1, f"{what} output items")
    msg = r.output[0]
    expect(isinstance(msg, ResponseOutputMessage), f"{what} output[0] is {type(msg).__name__}")
    expect_eq((msg.type, msg.role, msg.status), ("message", "assistant", "completed"), f"{what} output[0]")
    expect(msg.id.startswith("msg_"), f"{what} output[0].id {msg.id!r}")
    expect_eq([(p.type, p.text, p.annotations) for p in msg.content], [("output_text", text, [])],
              f"{what} output[0].content")
    expect_eq(r.output_text, text, f"{what} output_text")


def expect_usage(r, what="response"):
    u = r.usage
    expect(u is not None, f"{what} has no usage")
    expect(u.input_tokens > 0 and u.output_tokens > 0, f"{what} usage {u}")
    expect_eq(u.total_tokens, u.input_tokens + u.output_tokens, f"{what} usage.total_tokens")
    expect_eq(u.input_tokens_details.cached_tokens, 0, f"{what} usage cached_tokens")
    expect_eq(u.output_tokens_details.reasoning_tokens, 0, f"{what} usage reasoning_tokens")


def responses_create_plain():
    text = f"plain question {RUN}"
    r = client.responses.create(model="default", input=text)
    expect_response(r, echo(1, text))
    expect(r.output_text.startswith("Echo (1 context messages)"), f"output_text {r.output_text!r}")
    expect_usage(r)
    expect_eq(r.store, True, "store defaults to true")
    expect_eq(r.conversation, None, "conversation")
    expect_eq(r.previous_response_id, None, "previous_response_id")
    expect_eq(r.tools, [], "tools")
    expect_eq(r.truncation, "auto", "truncation defaults to auto")
    state["resp"] = r


def responses_create_repeats_the_settings():
    text = f"settings {RUN}"
    r = client.responses.create(model="default", input=text, instructions="be brief",
                                metadata={"run": RUN, "k": "v"}, temperature=0.5, top_p=0.9,
                                max_output_tokens=64)
    expect_response(r, echo(2, text))  # the instructions are a message the model receives
    expect_eq((r.instructions, r.metadata, r.temperature, r.top_p, r.max_output_tokens),
              ("be brief", {"run": RUN, "k": "v"}, 0.5, 0.9, 64),
              "instructions, metadata, temperature, top_p, max_output_tokens")
    state["settings_resp"] = r


def responses_system_and_developer_inputs_are_not_stored():
    r = client.responses.create(model="default", input=[
        {"role": "system", "content": "system says"},
        {"role": "developer", "content": "developer says"},
        {"role": "user", "content": f"user says {RUN}"},
    ])
    expect_response(r, echo(3, f"user says {RUN}"))
    listed = list(client.responses.input_items.list(r.id))
    expect_eq([(i.role, "".join(p.text for p in i.content)) for i in listed], [("user", f"user says {RUN}")],
              "input_items lists the user input only")


def responses_in_a_conversation():
    conv = client.conversations.create(items=[
        {"role": "user", "content": f"stored question {RUN}"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": f"stored answer {RUN}", "annotations": []}]},
    ])
    text = f"and now? {RUN}"
    r = client.responses.create(model="default", input=text, conversation=conv.id)
    expect_response(r, echo(3, text))  # the two stored items, then the input
    expect(r.conversation is not None, "conversation is null")
    expect_eq(r.conversation.id, conv.id, "conversation.id")
    items = all_items(conv.id)
    expect_eq([(i.role, text_of(i)) for i in items],
              [("user", f"stored question {RUN}"), ("assistant", f"stored answer {RUN}"),
               ("user", text), ("assistant", r.output_text)],
              "the turn (input and answer) is saved into the conversation")
    expect_eq(items[-1].id, r.output[0].id, "the stored answer's id is the output message's id")
    # The conversation as an object {"id"} works the same, and sees the first turn.
    r2 = client.responses.create(model="default", input=f"once more {RUN}", conversation={"id": conv.id})
    expect_response(r2, echo(5, f"once more {RUN}"), "second turn")
    expect_eq(len(all_items(conv.id)), 6, "items after the second turn")
    state["resp_conv"] = conv.id


def responses_chain_with_previous_response_id():
    first = state["resp"]
    r2 = client.responses.create(model="default", input=f"chained {RUN}", previous_response_id=first.id)
    expect_response(r2, echo(3, f"chained {RUN}"))  # first input, first answer, this input
    expect_eq(r2.previous_response_id, first.id, "previous_response_id")
    expect_usage(r2)
    expect(r2.usage.input_tokens > first.usage.input_tokens, "the chain's input counts the history")
    r3 = client.responses.create(model="default", input=f"chained again {RUN}", previous_response_id=r2.id)
    expect_response(r3, echo(5, f"chained again {RUN}"), "third link")
    state["chained"] = r3


def responses_store_false():
    r = client.responses.create(model="default", input=f"forget me {RUN}", store=False)
    expect_response(r, echo(1, f"forget me {RUN}"))
    expect_eq(r.store, False, "store")
    e = expect_raises(openai.NotFoundError, lambda: client.responses.retrieve(r.id), "retrieve of store=false")
    expect_eq(e.code, "response_not_found", "code")
    e = expect_raises(openai.NotFoundError,
                      lambda: client.responses.create(model="default", input="x", previous_response_id=r.id),
                      "chaining on store=false")
    expect_eq(e.code, "response_not_found", "code")


def responses_retrieve():
    for r in (state["resp"], state["chained"]):
        got = client.responses.retrieve(r.id)
        expect_response(got, r.output_text, "retrieved")
        expect_eq(got.id, r.id, "id")
        expect_eq(got.output[0].id, r.output[0].id, "output[0].id")
        expect_eq(got.created_at, r.created_at, "created_at")
        expect_eq(got.previous_response_id, r.previous_response_id, "previous_response_id")
        expect_eq(got.metadata, r.metadata, "metadata")


def responses_retrieve_repeats_settings_and_usage():
    r = state["settings_resp"]
    got = client.responses.retrieve(r.id)
    fields = ("instructions", "metadata", "temperature", "top_p", "max_output_tokens", "truncation", "store")
    expect_eq({f: getattr(got, f) for f in fields}, {f: getattr(r, f) for f in fields},
              "the retrieved response's settings")
    expect_eq(got.usage, r.usage, "the retrieved response's usage")


def responses_input_items_paginate():
    texts = [f"in one {RUN}", f"in two {RUN}", f"in three {RUN}"]
    r = client.responses.create(model="default", input=[
        {"role": "user", "content": texts[0]},
        {"role": "assistant", "content": texts[1]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": texts[2]}]},
    ])
    expect_response(r, echo(3, texts[2]))
    page = client.responses.input_items.list(r.id, limit=1)
    expect_eq([len(p.data) for p in page.iter_pages()], [1, 1, 1], "page sizes, 1 a page")
    items = list(client.responses.input_items.list(r.id, limit=1))
    expect_eq([(i.type, i.role, "".join(p.text for p in i.content)) for i in items],
              [("message", "user", texts[2]), ("message", "assistant", texts[1]), ("message", "user", texts[0])],
              "auto-pagination, newest first by default")
    suffix = r.id[len("resp_"):]
    expect_eq([i.id for i in items], [f"msg_{suffix}_{n}" for n in (2, 1, 0)], "input item ids")
    expect_eq([i.status for i in items], ["completed"] * 3, "status")
    asc = list(client.responses.input_items.list(r.id, limit=2, order="asc"))
    expect_eq([i.id for i in asc], [f"msg_{suffix}_{n}" for n in (0, 1, 2)], "order=asc")
    after = client.responses.input_items.list(r.id, order="asc", after=asc[0].id)
    expect_eq([i.id for i in after.data], [asc[1].id, asc[2].id], "after=")
    expect_eq(after.has_more, False, "has_more")
    state["listed_resp"] = r.id


def responses_delete():
    rid = state["listed_resp"]
    expect_eq(client.responses.delete(rid), None, "delete returns None")
    e = expect_raises(openai.NotFoundError, lambda: client.responses.retrieve(rid), "retrieve after delete")
    expect_eq(e.code, "response_not_found", "code")
    expect_raises(openai.NotFoundError, lambda: client.responses.input_items.list(rid), "input_items after delete")
    e = expect_raises(openai.NotFoundError, lambda: client.responses.delete(rid), "a second delete")
    expect_eq(e.code, "response_not_found", "code")


def check_stream_events(types, what):
    """The event sequence of one streamed text answer."""
    expect(types, f"{what}: no events")
    deltas = types.count("response.output_text.delta")
    expect(deltas >= 1, f"{what}: no output_text.delta in {types}")
    expect_eq(types, ["response.created", "response.in_progress", "response.output_item.added",
                      "response.content_part.added"] + ["response.output_text.delta"] * deltas
              + ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                 "response.completed"], f"{what}: event types in order")


def responses_stream_helper():
    conv = state["resp_conv"]
    before = len(all_items(conv))
    text = f"streamed {RUN}"
    with client.responses.stream(model="default", input=text, conversation=conv) as stream:
        events = list(stream)
        final = stream.get_final_response()
    check_stream_events([e.type for e in events], "stream()")
    expect_eq([e.sequence_number for e in events], list(range(len(events))), "sequence numbers")
    created, completed = events[0], events[-1]
    expect_eq(created.response.status, "in_progress", "status in response.created")
    expect_eq(completed.response.id, created.response.id, "the same response id throughout")
    joined = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expect_eq(joined, echo(before + 1, text), "the deltas concatenate to the answer")
    done = next(e for e in events if e.type == "response.output_text.done")
    expect_eq(done.text, joined, "output_text.done text")
    expect_response(final, joined, "get_final_response()")
    expect_eq(final.id, created.response.id, "final id")
    expect_usage(final, "final response")
    items = all_items(conv)
    expect_eq([(i.role, text_of(i)) for i in items[before:]], [("user", text), ("assistant", joined)],
              "the streamed turn is saved into the conversation")
    expect_eq(items[-1].id, final.output[0].id, "stored answer id")
    expect_eq(client.responses.retrieve(final.id).output_text, joined, "retrieve of the streamed response")


def responses_create_stream_true():
    text = f"raw stream {RUN}"
    events = list(client.responses.create(model="default", input=text, stream=True))
    check_stream_events([e.type for e in events], "create(stream=True)")
    joined = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expect_eq(joined, echo(1, text), "the deltas concatenate to the answer")
    final = events[-1].response
    expect_response(final, joined, "response.completed's response")
    added = next(e for e in events if e.type == "response.output_item.added")
    expect_eq(added.item.id, final.output[0].id, "output_item.added id")
    expect_eq(client.responses.retrieve(final.id).output_text, joined, "retrieve of the streamed response")


def responses_conversation_and_previous_response_id():
    e = expect_raises(openai.BadRequestError,
                      lambda: client.responses.create(model="default", input="x", conversation=state["resp_conv"],
                                                      previous_response_id=state["resp"].id),
                      "conversation with previous_response_id")
    expect_eq(e.status_code, 400, "status")


def responses_unknown_conversation():
    e = expect_raises(openai.NotFoundError,
                      lambda: client.responses.create(model="default", input="x",
                                                      conversation="conv_doesnotexist0000000000"),
                      "an unknown conversation")
    expect_eq(e.code, "conversation_not_found", "code")


def responses_unsupported_features():
    before = len(all_items(state["resp_conv"]))
    tool = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False},
            "strict": True}
    refused = [
        ("tools", dict(tools=[tool])),
        ("tool_choice required", dict(tool_choice="required")),
        ("text.format json_object", dict(text={"format": {"type": "json_object"}})),
        ("prompt", dict(prompt={"id": "pmpt_1"})),
    ]
    for what, extra in refused:
        e = expect_raises(openai.BadRequestError,
                          lambda: client.responses.create(model="default", input="x",
                                                          conversation=state["resp_conv"], **extra),
                          what)
        expect_eq(e.code, "unsupported_feature", f"code for {what}")
    expect_raises(openai.BadRequestError,
                  lambda: client.responses.create(model="default", input="x", background=True), "background")
    e = expect_raises(openai.BadRequestError,
                      lambda: client.responses.create(model="default", input="x", truncation="bogus"),
                      "truncation bogus")
    expect_eq(e.param, "truncation", "param")
    expect_eq(len(all_items(state["resp_conv"])), before, "nothing of the refused requests was stored")


BIG_ITEMS = 20
BIG_WORDS = 2000
WINDOW = 8192  # the echo model's context window (the built-in default route)


def responses_truncation():
    words = " ".join(f"w{i}" for i in range(BIG_WORDS))
    # One such text alone, to know its size in the model's tokens.
    one = client.responses.create(model="default", input=words, store=False)
    per_item = one.usage.input_tokens
    expect(per_item * BIG_ITEMS > WINDOW, f"{BIG_ITEMS} items of {per_item} tokens fit in {WINDOW}")
    expect(per_item < WINDOW, f"one item of {per_item} tokens does not fit in {WINDOW}")
    conv = client.conversations.create()
    for start in range(0, BIG_ITEMS, 10):
        client.conversations.items.create(conv.id, items=[
            {"role": "user" if n % 2 == 0 else "assistant", "content": f"{n} {words}"}
            for n in range(start, start + 10)])
    expect_eq(len(all_items(conv.id)), BIG_ITEMS, "items stored")
    e = expect_raises(openai.BadRequestError,
                      lambda: client.responses.create(model="default", input=f"fits? {RUN}",
                                                      conversation=conv.id, truncation="disabled"),
                      "truncation=disabled over the window")
    expect_eq(e.code, "context_length_exceeded", "code")
    expect_eq(len(all_items(conv.id)), BIG_ITEMS, "nothing stored by the refused turn")
    r = client.responses.create(model="default", input=f"fits? {RUN}", conversation=conv.id, truncation="auto")
    expect_eq(r.truncation, "auto", "truncation")
    expect(r.status == "completed", f"status {r.status}")
    prefix = "Echo ("
    expect(r.output_text.startswith(prefix) and r.output_text.endswith(f": fits? {RUN}"),
           f"output_text {r.output_text[:80]!r}")
    seen = int(r.output_text[len(prefix):].split(" ", 1)[0])
    expect(2 <= seen < BIG_ITEMS + 1, f"the model saw {seen} messages: the oldest history should be cut")
    expect(r.usage.input_tokens <= WINDOW, f"input_tokens {r.usage.input_tokens} over the window {WINDOW}")
    expect_eq(len(all_items(conv.id)), BIG_ITEMS + 2, "the turn is saved")


def responses_locked_conversation():
    conv = client.conversations.create(items=[{"role": "user", "content": f"lock me {RUN}"}])
    status, thread = freddy("PATCH", f"/v1/threads/{conv.id}", {"state": "locked"})
    expect_eq(status, 200, "PATCH state locked", ctx=thread)
    expect_eq(thread["state"], "locked", "state")
    e = expect_raises(openai.APIStatusError,
                      lambda: client.responses.create(model="default", input="x", conversation=conv.id),
                      "a response in a locked conversation")
    expect_eq(type(e), openai.APIStatusError, "exception class (423 has no subclass)")
    expect_eq(e.status_code, 423, "status")
    expect_eq(e.code, "thread_locked", "code")
    expect_eq(len(all_items(conv.id)), 1, "nothing stored")


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
    ("function_call, function_call_output and reasoning items are kept as given and sent as tool calls",
     function_call_items),
    ("an item_reference item raises BadRequestError unsupported_feature", item_reference),
    ("a system message raises BadRequestError unsupported_feature", system_role_item),
    ("21 items raise BadRequestError", too_many_items),
    ("the conversation is a thread with the same messages", conversation_is_a_thread),
    ("a thread from POST /v1/threads is a conversation", thread_is_a_conversation),
    ("GET /v1/conversations lists the conversations", skein_lists_conversations),
    ("conversations.delete, then retrieve raises NotFoundError", conversation_delete),
    ("responses.create answers a completed echo with usage", responses_create_plain),
    ("responses.create repeats instructions, metadata and sampling settings", responses_create_repeats_the_settings),
    ("system and developer inputs reach the model but are not stored",
     responses_system_and_developer_inputs_are_not_stored),
    ("responses.create in a conversation sees and extends its items", responses_in_a_conversation),
    ("previous_response_id chains the history", responses_chain_with_previous_response_id),
    ("store=False: neither retrievable nor chainable", responses_store_false),
    ("responses.retrieve answers the stored response", responses_retrieve),
    ("responses.retrieve repeats the settings and usage", responses_retrieve_repeats_settings_and_usage),
    ("responses.input_items.list auto-paginates, newest first", responses_input_items_paginate),
    ("responses.delete, then retrieve raises NotFoundError", responses_delete),
    ("responses.stream() in a conversation, get_final_response()", responses_stream_helper),
    ("responses.create(stream=True) yields the events", responses_create_stream_true),
    ("conversation with previous_response_id raises BadRequestError",
     responses_conversation_and_previous_response_id),
    ("an unknown conversation raises NotFoundError conversation_not_found", responses_unknown_conversation),
    ("tools, tool_choice, text.format, prompt, background, bad truncation raise BadRequestError",
     responses_unsupported_features),
    ("truncation=disabled over the window raises context_length_exceeded, auto cuts",
     responses_truncation),
    ("a locked conversation raises APIStatusError 423", responses_locked_conversation),
]

if __name__ == "__main__":
    try:
        for name, fn in CHECKS:
            check(name, fn)
    except Exception as e:  # noqa: BLE001
        aborted(e)
    finish()
