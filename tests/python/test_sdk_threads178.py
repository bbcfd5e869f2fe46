#!/usr/bin/env python3
"""Client-compatibility check of the newest Freddy SDK, `aitronos-sdk==0.8.178` (its own venv,
tests/python/requirements-sdk178.txt), on the newer thread features, each through the SDK's own
methods:

- incognito threads (`threads.create_thread(is_incognito=True)`: `expected_deletion_at` 24h on);
- `workflow_id` on threads and the `list_threads(workflow_id=...)` filter (0.8.178's
  `create_thread` has no `workflow_id` parameter, so it goes in through the SDK's
  `request_options={"additional_body_parameters": ...}`);
- title search `list_threads(search=...)`: case-insensitive with Unicode full case folding
  ("STRASSE" finds "Straße"), combined with a filter, `limit` and the `after` cursor;
- read state: `get_unread_threads`, `get_thread(...).has_unread`, `mark_thread_read`;
- `get_thread_changes(since=...)`: walked with `next_since` until `has_more` is false (pages
  kept small through `request_options={"additional_query_parameters": {"limit": 2}}`, the SDK
  method having no `limit`);
- `responses.create_response(is_incognito=..., workflow_id=..., thread_context_mode=...)`: the
  built-in echo model answers "Echo (N context messages): <text>", N counting the messages it
  got, so the context modes are observable; an unknown mode is the SDK's
  `UnprocessableEntityError`. New threads of responses are client-named (`thread_id` of a thread
  that does not exist yet): a response without `thread_id` stays thread-less in Skein.

Run ids and titles carry a random tag, so the script can share a server.

Plain script, no pytest. Environment: SKEIN_BASE_URL (server root), SKEIN_API_KEY.
Prints one line per check and ends with "N passed, M failed"; exits 1 if anything failed.
"""
import os
import secrets
import sys
from datetime import datetime, timedelta, timezone

import httpx
from aitronos import Aitronos, InputMessage, UnprocessableEntityError

from harness import body_of, check, expect, expect_eq, finish  # noqa: E402

BASE_URL = os.environ.get("SKEIN_BASE_URL", "").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY", "")
if not BASE_URL or not API_KEY:
    sys.exit("set SKEIN_BASE_URL and SKEIN_API_KEY")

NO_RETRY = {"max_retries": 0}
TAG = secrets.token_hex(4)
STAG = f"srch{secrets.token_hex(4)}"  # only in the search titles
client = Aitronos(api_key=API_KEY, base_url=BASE_URL, timeout=30)
created = []  # every thread this run made, deleted at the end
state = {}


def discover_org():
    """An API key belongs to exactly one organization, so organization_id may be omitted on a
    raw create; the SDK's create_thread requires it."""
    with httpx.Client(base_url=BASE_URL, headers={"X-API-Key": API_KEY}, timeout=30) as hx:
        r = hx.post("/v1/threads", json={"title": "org probe"})
        if r.status_code != 201:
            sys.exit(f"cannot discover organization: POST /v1/threads -> {r.status_code} {body_of(r)}")
        t = r.json()
        hx.delete(f"/v1/threads/{t['id']}")
        return t["organization_id"]


ORG = discover_org()
print(f"server {BASE_URL}, organization {ORG}, run tag {TAG}", flush=True)


def ts(value):
    expect(isinstance(value, str), f"timestamp {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_thread(title=None, workflow_id=None, **kw):
    opts = dict(NO_RETRY)
    if workflow_id is not None:
        opts["additional_body_parameters"] = {"workflow_id": workflow_id}
    t = client.threads.create_thread(organization_id=ORG, title=title, request_options=opts, **kw)
    created.append(t.id)
    return t


def respond(text, **kw):
    """responses.create_response with the echo model; returns (answer text, thread id)."""
    resp = client.responses.create_response(
        inputs=[InputMessage(role="user", content=text)], organization_id=ORG, request_options=NO_RETRY, **kw)
    expect(isinstance(resp, dict), f"response is {type(resp).__name__}: {str(resp)[:200]}")
    try:
        answer = resp["output"][0]["content"][0]["text"]
    except (KeyError, IndexError, TypeError) as e:
        raise AssertionError(f"no output[0].content[0].text ({e!r}); response: {str(resp)[:300]}") from None
    tid = resp.get("thread_id")
    expect(isinstance(tid, str) and tid, f"thread_id {tid!r}")
    if tid not in created:
        created.append(tid)
    return answer, tid


def extra(model, field):
    """A field the SDK's model does not declare (extra="allow" keeps it)."""
    data = model.model_dump()
    expect(field in data, f"{field} missing from {type(model).__name__}: {str(data)[:300]}")
    return data[field]


# ------------------------------------------------------------------------------------------
# incognito threads
# ------------------------------------------------------------------------------------------
def incognito_thread():
    t = new_thread(title=f"incognito {TAG}", is_incognito=True)
    expect_eq(t.is_incognito, True, "is_incognito", ctx=t)
    expect_eq(t.has_unread, False, "has_unread of a new thread", ctx=t)
    lifetime = ts(t.expected_deletion_at) - ts(t.created_at)
    expect(abs(lifetime - timedelta(hours=24)) <= timedelta(seconds=1),
           f"expected_deletion_at {t.expected_deletion_at} is not 24h after created_at {t.created_at}")
    again = client.threads.get_thread(t.id, request_options=NO_RETRY)
    expect_eq((again.is_incognito, again.expected_deletion_at), (True, t.expected_deletion_at), "get_thread")
    plain = new_thread(title=f"plain {TAG}")
    expect_eq((plain.is_incognito, plain.expected_deletion_at), (False, None),
              "a plain thread's is_incognito / expected_deletion_at", ctx=plain)


# ------------------------------------------------------------------------------------------
# workflow_id
# ------------------------------------------------------------------------------------------
WF_A, WF_B = f"wf_a_{TAG}", f"wf_b_{TAG}"


def workflow_filter():
    a1 = new_thread(title=f"wf a1 {TAG}", workflow_id=WF_A)
    a2 = new_thread(title=f"wf a2 {TAG}", workflow_id=WF_A)
    b1 = new_thread(title=f"wf b1 {TAG}", workflow_id=WF_B)
    new_thread(title=f"wf none {TAG}")
    expect_eq(extra(a1, "workflow_id"), WF_A, "workflow_id on the created thread")
    expect_eq(extra(client.threads.get_thread(b1.id, request_options=NO_RETRY), "workflow_id"), WF_B,
              "workflow_id on get_thread")
    got_a = client.threads.list_threads(workflow_id=WF_A, organization_id=ORG, request_options=NO_RETRY)
    expect_eq(sorted(t.id for t in got_a.data), sorted([a1.id, a2.id]), "list_threads(workflow_id=A)")
    expect(all(extra(t, "workflow_id") == WF_A for t in got_a.data), "every listed thread carries workflow A")
    got_b = client.threads.list_threads(workflow_id=WF_B, request_options=NO_RETRY)
    expect_eq([t.id for t in got_b.data], [b1.id], "list_threads(workflow_id=B)")


def workflow_id_bounds():
    try:
        new_thread(title=f"wf long {TAG}", workflow_id="w" * 257)
    except UnprocessableEntityError as e:
        expect_eq(e.status_code, 422, "status")
    else:
        raise AssertionError("a 257-character workflow_id was accepted")
    longest = new_thread(title=f"wf 256 {TAG}", workflow_id="w" * 256)
    expect_eq(extra(longest, "workflow_id"), "w" * 256, "a 256-character workflow_id")


# ------------------------------------------------------------------------------------------
# search
# ------------------------------------------------------------------------------------------
WF_S = f"wf_search_{TAG}"
SEARCH_TITLES = {
    "strasse": f"Straße plan {STAG}",
    "upper": f"STRASSE map {STAG}",
    "inner": f"Hauptstrasse notes {STAG}",
    "apples": f"Grüne ÄPFEL {STAG}",
    "other": f"Unrelated {STAG}",
}


def search_case_insensitive():
    ids = {k: new_thread(title=v, workflow_id=WF_S).id for k, v in SEARCH_TITLES.items()}
    state["search_ids"] = ids
    # ASCII case folding: the search tag in upper case finds all five titles.
    got = client.threads.list_threads(search=STAG.upper(), organization_id=ORG, request_options=NO_RETRY)
    expect_eq(sorted(t.id for t in got.data), sorted(ids.values()), f"search={STAG.upper()!r}")
    # Non-ASCII simple folding: "grüne äpfel" finds "Grüne ÄPFEL".
    got = client.threads.list_threads(search=f"grüne äpfel {STAG}", request_options=NO_RETRY)
    expect_eq([t.id for t in got.data], [ids["apples"]], "search='grüne äpfel ...'")
    expect_eq(got.data[0].title, SEARCH_TITLES["apples"], "title")


def search_full_case_folding_with_filter():
    ids = state["search_ids"]
    want = sorted([ids["strasse"], ids["upper"], ids["inner"]])
    got = client.threads.list_threads(search="STRASSE", workflow_id=WF_S, request_options=NO_RETRY)
    expect_eq(sorted(t.id for t in got.data), want, "search='STRASSE' workflow_id=<run> (finds 'Straße')")
    got = client.threads.list_threads(search="straße", workflow_id=WF_S, request_options=NO_RETRY)
    expect_eq(sorted(t.id for t in got.data), want, "search='straße' workflow_id=<run> (finds 'STRASSE')")
    got = client.threads.list_threads(search="STRASSE", workflow_id=WF_A, request_options=NO_RETRY)
    expect_eq([t.id for t in got.data], [], "search='STRASSE' with another workflow")


def search_paging():
    ids = state["search_ids"]
    want = sorted([ids["strasse"], ids["upper"], ids["inner"]])
    seen, after, pages = [], None, 0
    while True:
        page = client.threads.list_threads(search="sTrAsSe", workflow_id=WF_S, limit=1, after=after,
                                           request_options=NO_RETRY)
        pages += 1
        expect(pages <= 5, f"paging does not end: {seen}")
        expect_eq(len(page.data), 1, f"page {pages} size", ctx=page)
        seen.append(page.data[0].id)
        expect_eq(page.last_id, page.data[0].id, "last_id")
        if not page.has_more:
            break
        after = page.last_id
    expect_eq(pages, 3, "pages of one")
    expect_eq(sorted(seen), want, "the matches, each once, over the pages")


# ------------------------------------------------------------------------------------------
# read state
# ------------------------------------------------------------------------------------------
def unread_after_a_response():
    answer, tid = respond(f"unread {TAG}", thread_id=f"thread_unread{TAG}")
    expect_eq(tid, f"thread_unread{TAG}", "thread_id")
    expect_eq(answer, f"Echo (1 context messages): unread {TAG}", "answer")
    state["unread_tid"] = tid
    unread = client.threads.get_unread_threads(organization_id=ORG, request_options=NO_RETRY)
    expect(tid in unread.unread_thread_ids, f"{tid} not in unread_thread_ids {unread.unread_thread_ids}")
    expect_eq(unread.unread_count, len(unread.unread_thread_ids), "unread_count")
    expect_eq(client.threads.get_thread(tid, request_options=NO_RETRY).has_unread, True, "has_unread")


def mark_read():
    tid = state["unread_tid"]
    before = client.threads.get_unread_threads(organization_id=ORG, request_options=NO_RETRY)
    expect(tid in before.unread_thread_ids, f"{tid} not unread before mark_thread_read")
    done = client.threads.mark_thread_read(tid, request_options=NO_RETRY)
    expect_eq(done.success, True, "success", ctx=done)
    unread = client.threads.get_unread_threads(organization_id=ORG, request_options=NO_RETRY)
    expect(tid not in unread.unread_thread_ids, f"{tid} still in unread_thread_ids")
    expect_eq(unread.unread_count, len(unread.unread_thread_ids), "unread_count")
    # The count drops by this thread; on a shared server other runs' threads may come and go,
    # so it is compared over the same other threads.
    others = set(unread.unread_thread_ids) - set(before.unread_thread_ids)
    gone = set(before.unread_thread_ids) - set(unread.unread_thread_ids) - {tid}
    expect_eq(unread.unread_count, before.unread_count - 1 + len(others) - len(gone),
              "unread_count after mark_thread_read")
    expect_eq(client.threads.get_thread(tid, request_options=NO_RETRY).has_unread, False, "has_unread")


def unread_again():
    tid = state["unread_tid"]
    answer, same = respond(f"again {TAG}", thread_id=tid)
    expect_eq(same, tid, "thread_id")
    expect_eq(answer, f"Echo (3 context messages): again {TAG}", "answer")
    unread = client.threads.get_unread_threads(request_options=NO_RETRY)
    expect(tid in unread.unread_thread_ids, f"{tid} not unread again: {unread.unread_thread_ids}")
    expect_eq(client.threads.get_thread(tid, request_options=NO_RETRY).has_unread, True, "has_unread")


# ------------------------------------------------------------------------------------------
# changes
# ------------------------------------------------------------------------------------------
def changes_walk():
    since = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    made = [new_thread(title=f"change {i} {TAG}").id for i in range(5)]
    renamed, deleted = made[0], made[1]
    client.threads.update_thread(renamed, title=f"change 0 renamed {TAG}", request_options=NO_RETRY)
    expect_eq(client.threads.delete_thread(deleted, request_options=NO_RETRY), None, "delete_thread")
    opts = dict(NO_RETRY, additional_query_parameters={"limit": 2})
    seen, order, cursor, pages = {}, [], since, 0
    while True:
        page = client.threads.get_thread_changes(since=cursor, organization_id=ORG, request_options=opts)
        pages += 1
        expect(isinstance(page, dict), f"answer is {type(page).__name__}")
        expect(pages <= 1000, "the walk does not end")
        expect_eq(page.get("object"), "list", "object", ctx=page)
        expect(len(page["data"]) <= 2, f"page of {len(page['data'])} with limit=2")
        for t in page["data"]:
            if t["id"] in made:
                expect(t["id"] not in seen, f"{t['id']} (changed once) seen twice in one walk")
                order.append(t["id"])
            seen[t["id"]] = t
        expect(isinstance(page["next_since"], str), f"next_since {page.get('next_since')!r}")
        if not page["has_more"]:
            break
        cursor = page["next_since"]
    expect(pages >= 3, f"only {pages} pages for at least 5 changes at limit=2")
    missing = [i for i in made if i not in seen]
    expect_eq(missing, [], "threads missing from the walk")
    # Oldest change first. Only this run's threads are compared: its writes were one after
    # another, while other clients' concurrent writes may be stamped in a different order than
    # their updated_at (the feed orders by commit, not by the request's clock).
    expect_eq(order, made[2:] + [renamed, deleted], "this run's threads in the order of their last change")
    times = [ts(seen[i].get("deleted_at") or seen[i]["updated_at"]) for i in order]
    expect_eq(times, sorted(times), "their updated_at / deleted_at in that order")
    expect_eq(seen[renamed]["title"], f"change 0 renamed {TAG}", "the renamed thread's title")
    expect(seen[deleted].get("deleted_at"), f"no deleted_at on the deleted thread: {seen[deleted]}")
    expect(all(seen[i].get("deleted_at") is None for i in made if i != deleted), "deleted_at on a live thread")
    # Nothing changed since: a walk from the last next_since brings none of them back.
    rest = client.threads.get_thread_changes(since=page["next_since"], request_options=NO_RETRY)
    expect_eq([t["id"] for t in rest["data"] if t["id"] in made], [], "changes after the last next_since")


# ------------------------------------------------------------------------------------------
# responses: incognito, workflow, context modes
# ------------------------------------------------------------------------------------------
WF_R = f"wf_resp_{TAG}"


def response_creates_an_incognito_workflow_thread():
    answer, tid = respond(f"secret {TAG}", thread_id=f"thread_incog{TAG}", is_incognito=True, workflow_id=WF_R)
    expect_eq(tid, f"thread_incog{TAG}", "thread_id")
    expect_eq(answer, f"Echo (1 context messages): secret {TAG}", "answer")
    t = client.threads.get_thread(tid, request_options=NO_RETRY)
    expect_eq((t.is_incognito, extra(t, "workflow_id")), (True, WF_R), "is_incognito / workflow_id", ctx=t)
    lifetime = ts(t.expected_deletion_at) - ts(t.created_at)
    expect(abs(lifetime - timedelta(hours=24)) <= timedelta(seconds=1),
           f"expected_deletion_at {t.expected_deletion_at} is not 24h after created_at {t.created_at}")
    listed = client.threads.list_threads(workflow_id=WF_R, request_options=NO_RETRY)
    expect_eq([x.id for x in listed.data], [tid], "list_threads(workflow_id=<the response's>)")


def response_on_an_existing_thread_keeps_its_settings():
    plain = new_thread(title=f"existing {TAG}")
    _, tid = respond(f"later {TAG}", thread_id=plain.id, is_incognito=True, workflow_id=f"{WF_R}_late")
    expect_eq(tid, plain.id, "thread_id")
    t = client.threads.get_thread(tid, request_options=NO_RETRY)
    expect_eq((t.is_incognito, extra(t, "workflow_id"), t.expected_deletion_at), (False, None, None),
              "is_incognito / workflow_id / expected_deletion_at (set only when the response creates the thread)")


def context_modes():
    tid = f"thread_ctx{TAG}"
    for i in range(6):  # 12 earlier messages: 6 questions, 6 answers
        answer, got = respond(f"turn {i}", thread_id=tid)
        expect_eq(got, tid, "thread_id")
        expect_eq(answer, f"Echo ({2 * i + 1} context messages): turn {i}", f"answer {i}")
    # Each answered turn adds two messages to the history.
    for mode, history, want in [("off", 12, 1), ("recent", 14, 11), ("smart", 16, 11), ("full", 18, 19)]:
        answer, _ = respond(f"mode {mode}", thread_id=tid, thread_context_mode=mode)
        expect_eq(answer, f"Echo ({want} context messages): mode {mode}",
                  f"thread_context_mode={mode} with {history} earlier messages")


def unknown_context_mode():
    try:
        respond(f"bad mode {TAG}", thread_context_mode="everything")
    except UnprocessableEntityError as e:
        expect_eq(e.status_code, 422, "status")
        expect("thread_context_mode" in str(e.body), f"the error does not name the field: {str(e.body)[:300]}")
    else:
        raise AssertionError("thread_context_mode='everything' was accepted")


def cleanup():
    for tid in created:
        try:
            client.threads.delete_thread(tid, request_options=NO_RETRY)
        except Exception as e:  # noqa: BLE001 - the deleted one in the walk is already gone
            expect_eq(getattr(e, "status_code", None), 404, f"delete {tid}")
    for tag in (TAG, STAG):
        left = client.threads.list_threads(search=tag, request_options=NO_RETRY)
        expect_eq([t.id for t in left.data], [], f"threads titled with {tag} left")


check("threads.create_thread(is_incognito=True) -> is_incognito, expected_deletion_at = created_at + 24h",
      incognito_thread)
check("create_thread with workflow_id (additional_body_parameters); list_threads(workflow_id=...) -> exactly those",
      workflow_filter)
check("create_thread workflow_id of 257 chars -> UnprocessableEntityError 422; 256 accepted", workflow_id_bounds)
check("list_threads(search=...) case-insensitive, incl. 'grüne äpfel' -> 'Grüne ÄPFEL'", search_case_insensitive)
check("list_threads(search='STRASSE'/'straße', workflow_id=...) -> 'Straße', 'STRASSE', 'Hauptstrasse'",
      search_full_case_folding_with_filter)
check("list_threads(search=..., workflow_id=..., limit=1, after=last_id) pages through each match once",
      search_paging)
check("responses.create_response in a new thread -> get_unread_threads lists it, get_thread has_unread",
      unread_after_a_response)
check("threads.mark_thread_read -> success; unread_count drops, has_unread false", mark_read)
check("a new response on the read thread -> unread again", unread_again)
check("threads.get_thread_changes walked with next_since: created, renamed, deleted (deleted_at), each once",
      changes_walk)
check("responses.create_response(is_incognito=True, workflow_id=...) in a new thread -> the thread shows both",
      response_creates_an_incognito_workflow_thread)
check("create_response(is_incognito, workflow_id) on an existing thread leaves it as it was",
      response_on_an_existing_thread_keeps_its_settings)
check("create_response(thread_context_mode=off/recent/smart/full) -> 1/11/11/19 context messages", context_modes)
check("create_response(thread_context_mode='everything') -> UnprocessableEntityError 422", unknown_context_mode)
check("delete the run's threads (threads.delete_thread)", cleanup)
finish()
