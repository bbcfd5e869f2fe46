#!/usr/bin/env python3
"""Client-compatibility check of the OpenAI Agents SDK, `openai-agents==0.24.0` (its own venv,
tests/python/requirements-openai.txt), against Skein's OpenAI dialect: an agent with no tools
keeps a conversation session (`OpenAIConversationsSession`) over two turns, as the Agents SDK
does it itself: it reads the conversation's items, adds the user input, calls
`POST /v1/responses` with the whole history, and adds the answer. Then `pop_item`,
`clear_session`, a streamed turn (`Runner.run_streamed`), and a server-managed turn
(`Runner.run(conversation_id=...)`, which sends `conversation` and the new input only), and a
session holding a function call and its output (as a tool-using agent leaves it), which the
next turn sends to the model.

The OpenAI client under the agent is built with `_strict_response_validation=True` and
`max_retries=0`, so every answer is validated against the SDK's models and a failure is seen
once; tracing is off, so nothing leaves for api.openai.com.

Answers come from the built-in echo model (the default route), which replies
"Echo (N context messages): <last user text>", N being the number of messages it received
(the agent's instructions, the history and the input).

The session's conversation is a Freddy thread: its items are read back as the thread's
messages through `/v1/threads` (stdlib urllib, `X-API-Key`).

Plain script, no pytest. Environment: SKEIN_BASE_URL (server root), SKEIN_API_KEY.
Prints one line per check and ends with "N passed, M failed"; exits 1 if anything failed.
"""
import asyncio
import json
import os
import secrets
import sys
import urllib.error
import urllib.request

from agents import (
    Agent,
    OpenAIConversationsSession,
    Runner,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from harness import aborted, check, expect, expect_eq, finish  # noqa: E402

BASE_URL = os.environ.get("SKEIN_BASE_URL", "").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY", "")
if not BASE_URL or not API_KEY:
    sys.exit("set SKEIN_BASE_URL and SKEIN_API_KEY")

RUN = secrets.token_hex(4)
FIRST = f"what is skein? {RUN}"
SECOND = f"and what did I just ask? {RUN}"
INSTRUCTIONS = "Answer briefly."
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


def echo(n, text):
    """What the echo model answers when it received `n` messages, the last user one `text`."""
    return f"Echo ({n} context messages): {text}"


def text_of(item):
    """The text of a session item (a dict as the Agents SDK keeps it)."""
    content = item["content"]
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content)


def summary(items):
    return [(i.get("type"), i["role"], text_of(i)) for i in items]


class Scenario:
    """One agent and its session, driven check by check on one event loop."""

    def __init__(self):
        self.client = AsyncOpenAI(base_url=BASE_URL + "/v1", api_key=API_KEY, max_retries=0,
                                  _strict_response_validation=True)
        set_default_openai_client(self.client, use_for_tracing=False)
        set_tracing_disabled(True)
        self.agent = Agent(name="skein-echo", instructions=INSTRUCTIONS, model="default")
        self.session = OpenAIConversationsSession(openai_client=self.client)

    async def first_turn(self):
        result = await Runner.run(self.agent, FIRST, session=self.session)
        out = result.final_output
        expect(isinstance(out, str) and out.startswith("Echo ("), f"final_output {out!r}")
        # The instructions and the input: the empty new conversation adds nothing.
        expect_eq(out, echo(2, FIRST), "final_output")
        conv_id = self.session.session_id
        expect(conv_id.startswith("conv_"), f"session id {conv_id!r}")
        expect_eq(await self.session._get_session_id(), conv_id, "_get_session_id()")
        state["conv"] = conv_id
        state["first"] = result

    async def second_turn(self):
        result = await Runner.run(self.agent, SECOND, session=self.session)
        # The instructions, the first turn's question and answer, and the new input.
        expect_eq(result.final_output, echo(4, SECOND), "final_output (the model saw the first turn)")
        expect_eq(self.session.session_id, state["conv"], "the same conversation")
        state["second"] = result

    async def responses_are_stored(self):
        for key in ("first", "second"):
            result = state[key]
            rid = result.last_response_id
            expect(rid and rid.startswith("resp_"), f"last_response_id {rid!r}")
            got = await self.client.responses.retrieve(rid)
            expect_eq(got.output_text, result.final_output, f"retrieved output_text of the {key} turn")
            expect_eq(got.conversation, None, "the session sends the history, not conversation=")

    async def get_items(self):
        items = await self.session.get_items()
        expect_eq(summary(items),
                  [("message", "user", FIRST), ("message", "assistant", echo(2, FIRST)),
                   ("message", "user", SECOND), ("message", "assistant", echo(4, SECOND))],
                  "the session's items, oldest first")
        expect(all(i["id"].startswith("msg_") for i in items), f"ids {[i['id'] for i in items]}")
        expect_eq([i["status"] for i in items], ["completed"] * 4, "status")
        expect_eq(summary(await self.session.get_items(limit=2)), summary(items[2:]), "get_items(limit=2)")
        state["items"] = items

    async def items_are_thread_messages(self):
        status, msgs = freddy("GET", f"/v1/threads/{state['conv']}/messages?order=asc&limit=100")
        expect_eq(status, 200, "GET messages status", ctx=msgs)
        expect_eq([(m["id"], m["role"], m["content"]) for m in msgs["data"]],
                  [(i["id"], i["role"], text_of(i)) for i in state["items"]],
                  "the thread's messages are the session's items")

    async def pop_item(self):
        popped = await self.session.pop_item()
        expect(popped is not None, "pop_item() returned None")
        expect_eq((popped["id"], popped["role"], text_of(popped)),
                  (state["items"][-1]["id"], "assistant", echo(4, SECOND)), "the popped item is the last")
        left = await self.session.get_items()
        expect_eq([i["id"] for i in left], [i["id"] for i in state["items"][:3]], "the items left")
        status, msgs = freddy("GET", f"/v1/threads/{state['conv']}/messages?order=asc&limit=100")
        expect_eq(status, 200, "GET messages status", ctx=msgs)
        expect_eq([m["id"] for m in msgs["data"]], [i["id"] for i in left], "the thread's messages")

    async def clear_session(self):
        conv_id = state["conv"]
        await self.session.clear_session()
        expect_eq(self.session._session_id, None, "the session forgot its conversation")
        status, body = freddy("GET", f"/v1/threads/{conv_id}")
        expect_eq(status, 404, "GET of the thread after clear_session()", ctx=body)
        status, body = freddy("GET", f"/v1/threads/{conv_id}/messages")
        expect_eq(status, 404, "GET of its messages", ctx=body)

    async def a_cleared_session_starts_over(self):
        result = await Runner.run(self.agent, f"fresh start {RUN}", session=self.session)
        expect_eq(result.final_output, echo(2, f"fresh start {RUN}"), "final_output (no history)")
        expect(self.session.session_id != state["conv"], "a new conversation")
        expect_eq(summary(await self.session.get_items()),
                  [("message", "user", f"fresh start {RUN}"),
                   ("message", "assistant", echo(2, f"fresh start {RUN}"))],
                  "the new conversation's items")
        state["fresh"] = self.session.session_id

    async def a_streamed_turn(self):
        text = f"streamed turn {RUN}"
        result = Runner.run_streamed(self.agent, text, session=self.session)
        kinds = [event.type async for event in result.stream_events()]
        expect("raw_response_event" in kinds, f"event kinds {sorted(set(kinds))}")
        # The instructions, the fresh turn's two items and the input.
        expect_eq(result.final_output, echo(4, text), "final_output")
        items = await self.session.get_items()
        expect_eq(summary(items[2:]), [("message", "user", text), ("message", "assistant", echo(4, text))],
                  "the streamed turn is kept in the session")

    async def a_server_managed_conversation(self):
        # Runner.run(conversation_id=...) sends conversation= and the new input only: the
        # server puts the conversation's items in front and saves the turn.
        text = f"server side {RUN}"
        result = await Runner.run(self.agent, text, conversation_id=state["fresh"])
        expect_eq(result.final_output, echo(6, text), "final_output (instructions, 4 items, input)")
        items = await self.session.get_items()
        expect_eq(summary(items[4:]), [("message", "user", text), ("message", "assistant", echo(6, text))],
                  "the server saved the turn into the conversation")

    async def tool_items_in_a_session(self):
        # What a session holds after an agent ran a tool: the call and its output, stored as
        # given and sent to the model as a tool call and its result (the echo model counts them).
        session = OpenAIConversationsSession(openai_client=self.client)
        await session.add_items([
            {"role": "user", "content": f"weather? {RUN}"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_w", "name": "get_weather",
             "arguments": "{\"city\": \"Oslo\"}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_w", "output": "sunny"},
        ])
        text = f"thanks {RUN}"
        result = await Runner.run(self.agent, text, session=session)
        expect_eq(result.final_output, echo(5, text), "final_output (instructions, message, call, output, input)")
        items = await session.get_items()
        expect_eq([i.get("type") for i in items],
                  ["message", "function_call", "function_call_output", "message", "message"], "item types")
        expect_eq((items[1]["call_id"], items[1]["name"], items[2]["output"]), ("call_w", "get_weather", "sunny"),
                  "the call and its output as given")
        status, msgs = freddy("GET", f"/v1/threads/{session.session_id}/messages")
        expect_eq(status, 200, "GET messages status", ctx=msgs)
        expect_eq([m["content"] for m in msgs["data"]], [f"weather? {RUN}", text, echo(5, text)],
                  "the Freddy dialect sees the messages only")


async def acheck(name, step):
    """`harness.check` for a coroutine: awaited here, reported (and counted) by the harness."""
    try:
        await step()
    except Exception as e:  # noqa: BLE001 - every failure is reported, never fatal
        failure = e

        def reraise():
            raise failure

        check(name, reraise)
        return
    check(name, lambda: None)


async def main():
    s = Scenario()
    await acheck("a first turn with a new session answers the input", s.first_turn)
    await acheck("a second turn sees the first (the echo count grows)", s.second_turn)
    await acheck("each turn's response is stored and retrievable", s.responses_are_stored)
    await acheck("session.get_items() returns user, assistant, user, assistant", s.get_items)
    await acheck("the session's items are the thread's messages (Freddy)", s.items_are_thread_messages)
    await acheck("session.pop_item() removes the last item", s.pop_item)
    await acheck("session.clear_session() deletes the conversation (thread 404)", s.clear_session)
    await acheck("a cleared session starts a new conversation", s.a_cleared_session_starts_over)
    await acheck("Runner.run_streamed keeps its turn in the session", s.a_streamed_turn)
    await acheck("Runner.run(conversation_id=) lets the server keep the turn", s.a_server_managed_conversation)
    await acheck("a session holding a tool call and its output sends them to the model", s.tool_items_in_a_session)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001
        aborted(e)
    finish()
