#!/usr/bin/env python3
"""Client-compatibility checks: drive a running Skein server through the published
Freddy Python clients (freddy-backend-client==0.1.1 and aitronos-sdk==5.0.0).

Plain script, no pytest. Environment:
  SKEIN_BASE_URL  server root, e.g. http://127.0.0.1:8080 (no /v1)
  SKEIN_API_KEY   an API key (sk_...) of one organization/user
  SKEIN_ORG_ID    optional; discovered from the key when unset

Prints one line per check and ends with "N passed, M failed"; exits 1 if anything failed.
Each client section starts with delete-all, so the key's existing threads are removed.
"""
import json
import os
import sys
from http import HTTPStatus

import httpx

from freddy_client import AuthenticatedClient
from freddy_client.api.threads import (
    create_thread_v1_threads_post as f_create,
    delete_thread_v1_threads_thread_id_delete as f_delete,
    get_thread_v1_threads_thread_id_get as f_get,
    list_threads_v1_threads_get as f_list,
    update_thread_v1_threads_thread_id_patch as f_update,
)
from freddy_client.models import (
    HTTPValidationError,
    ThreadCreate,
    ThreadListResponse as FThreadList,
    ThreadResponse as FThread,
    ThreadUpdate,
)
from freddy_client.models.thread_create_metadata_type_0 import ThreadCreateMetadataType0
from freddy_client.models.thread_update_metadata_type_0 import ThreadUpdateMetadataType0

from aitronos import Aitronos
from aitronos.core.api_error import ApiError
from aitronos.types.delete_all_threads_response import DeleteAllThreadsResponse
from aitronos.types.pin_thread_response import PinThreadResponse
from aitronos.types.thread_list_response import ThreadListResponse as AThreadList
from aitronos.types.thread_response import ThreadResponse as AThread

BASE_URL = os.environ.get("SKEIN_BASE_URL", "").rstrip("/")
API_KEY = os.environ.get("SKEIN_API_KEY", "")
if not BASE_URL or not API_KEY:
    sys.exit("set SKEIN_BASE_URL and SKEIN_API_KEY")

NO_RETRY = {"max_retries": 0}
EXTRA_THREADS = 5          # threads created after the first one in each section
PAGE = 2                   # list page size for the cursor walk
MD_CREATE = {"a": "1", "b": "2"}
MD_PATCH = {"b": None, "c": "3"}
MD_EXPECTED = {"a": "1", "c": "3"}
MD_TOO_MANY = {f"k{i}": "v" for i in range(17)}

from harness import aborted, body_of, check, expect, expect_eq, finish  # noqa: E402,F401





def discover_org():
    org = os.environ.get("SKEIN_ORG_ID")
    if org:
        return org
    # An API key belongs to exactly one organization, so organization_id may be omitted on create.
    with httpx.Client(base_url=BASE_URL, headers={"X-API-Key": API_KEY}, timeout=30) as hx:
        r = hx.post("/v1/threads", json={"title": "org probe"})
        if r.status_code != 201:
            sys.exit(f"cannot discover organization: POST /v1/threads -> {r.status_code} {body_of(r)}")
        t = r.json()
        hx.delete(f"/v1/threads/{t['id']}")
        return t["organization_id"]


ORG = discover_org()
print(f"server {BASE_URL}, organization {ORG}", flush=True)


# --------------------------------------------------------------------------------------------
# freddy-backend-client 0.1.1
# --------------------------------------------------------------------------------------------
def freddy_section():
    P = "freddy:"
    # Authorization: Bearer sk_... (Skein treats a bearer value with the key prefix as an API key)
    client = AuthenticatedClient(base_url=BASE_URL, token=API_KEY, raise_on_unexpected_status=False,
                                 timeout=httpx.Timeout(30.0))
    hx = client.get_httpx_client()   # for pin/unpin/delete-all, which 0.1.1 lacks
    st = {}

    def reset():
        r = hx.delete("/v1/threads", params={"organization_id": ORG})
        expect_eq(r.status_code, 200, "DELETE /v1/threads status", ctx=body_of(r))
    check(f"{P} delete-all at start (clean state)", reset)

    def create():
        r = f_create.sync_detailed(client=client, body=ThreadCreate(
            organization_id=ORG, title="freddy t1", metadata=ThreadCreateMetadataType0.from_dict(MD_CREATE)))
        expect_eq(r.status_code, HTTPStatus.CREATED, "create status", ctx=r.content)
        t = r.parsed
        expect(isinstance(t, FThread), f"parsed is {type(t).__name__}")
        expect(t.id.startswith("thread_"), f"id {t.id!r}")
        expect_eq(t.organization_id, ORG, "organization_id")
        expect_eq(t.title, "freddy t1", "title")
        expect_eq(t.metadata.to_dict(), MD_CREATE, "metadata")
        expect_eq(t.message_count, 0, "message_count")
        st["t1"] = t.id
    check(f"{P} create -> 201 ThreadResponse", create)

    def get():
        r = f_get.sync_detailed(st["t1"], client=client)
        expect_eq(r.status_code, 200, "get status")
        t = r.parsed
        expect(isinstance(t, FThread), f"parsed is {type(t).__name__}")
        expect_eq(t.id, st["t1"], "id")
        expect_eq(t.metadata.to_dict(), MD_CREATE, "metadata")
        expect_eq(t.additional_properties.get("is_pinned"), False, "is_pinned")
        expect_eq(t.object_, "thread", "object")
        expect_eq(json.loads(r.content).get("space_ids"), [], "space_ids (raw)")
    check(f"{P} get -> 200 ThreadResponse", get)

    def create_more():
        ids = [st["t1"]]
        for i in range(EXTRA_THREADS):
            r = f_create.sync_detailed(client=client, body=ThreadCreate(organization_id=ORG, title=f"freddy t{i + 2}"))
            expect_eq(r.status_code, HTTPStatus.CREATED, f"create #{i + 2} status")
            ids.append(r.parsed.id)
        expect_eq(len(set(ids)), len(ids), "distinct ids")
        st["ids"] = ids
    check(f"{P} create {EXTRA_THREADS} more threads", create_more)

    def walk():
        seen, after, pages = [], None, 0
        while True:
            kw = {"after": after} if after else {}
            r = f_list.sync_detailed(client=client, organization_id=ORG, limit=PAGE, **kw)
            expect_eq(r.status_code, 200, f"list page {pages + 1} status", ctx=r.content)
            p = r.parsed
            expect(isinstance(p, FThreadList), f"parsed is {type(p).__name__}")
            pages += 1
            page_ids = [x.id for x in p.data]
            expect(len(page_ids) <= PAGE, f"page {pages} has {len(page_ids)} items > limit")
            if page_ids:
                expect_eq(p.last_id, page_ids[-1], f"page {pages} last_id")
            seen += page_ids
            if not p.has_more:
                break
            expect(page_ids, f"page {pages} empty but has_more")
            after = p.last_id
            expect(pages < 50, "too many pages")
        expect_eq(len(seen), len(set(seen)), f"duplicates in walk {seen}")
        expected = list(reversed(st["ids"]))   # newest first by default
        expect_eq(seen, expected, "walk order/content")
        expect_eq(pages, -(-len(expected) // PAGE), "page count")
    check(f"{P} list walk after=last_id limit={PAGE}: no dups, no skips, newest first", walk)

    def patch():
        r = f_update.sync_detailed(st["t1"], client=client, body=ThreadUpdate(
            metadata=ThreadUpdateMetadataType0.from_dict(MD_PATCH)))
        expect_eq(r.status_code, 200, "patch status", ctx=r.content)
        t = r.parsed
        expect(isinstance(t, FThread), f"parsed is {type(t).__name__}")
        expect_eq(t.metadata.to_dict(), MD_EXPECTED, "merged metadata")
        expect_eq(t.title, "freddy t1", "title unchanged")
        g = f_get.sync_detailed(st["t1"], client=client).parsed
        expect_eq(g.metadata.to_dict(), MD_EXPECTED, "metadata after re-get")
    check(f"{P} patch metadata merge (null removes key)", patch)

    def pin():
        tid = st["ids"][1]
        r = hx.post(f"/v1/threads/{tid}/pin")
        expect_eq(r.status_code, 200, "pin status", ctx=body_of(r))
        b = r.json()
        expect_eq(b.get("id"), tid, "id")
        expect_eq(b.get("is_pinned"), True, "is_pinned")
        expect(isinstance(b.get("pinned_at"), str) and b["pinned_at"], f"pinned_at {b.get('pinned_at')!r}")
        g = f_get.sync_detailed(tid, client=client).parsed
        expect_eq(g.additional_properties.get("is_pinned"), True, "is_pinned on get")
    check(f"{P} pin (raw httpx) -> is_pinned true, pinned_at set", pin)

    def unpin():
        tid = st["ids"][1]
        r = hx.post(f"/v1/threads/{tid}/unpin")
        expect_eq(r.status_code, 200, "unpin status", ctx=body_of(r))
        b = r.json()
        expect_eq(b.get("is_pinned"), False, "is_pinned")
        expect("pinned_at" in b, "pinned_at key present")
        expect_eq(b["pinned_at"], None, "pinned_at")
    check(f"{P} unpin (raw httpx) -> is_pinned false, pinned_at null", unpin)

    def validation():
        r = f_create.sync_detailed(client=client, body=ThreadCreate(
            organization_id=ORG, metadata=ThreadCreateMetadataType0.from_dict(MD_TOO_MANY)))
        expect_eq(r.status_code, 422, "status", ctx=r.content)
        v = r.parsed
        expect(isinstance(v, HTTPValidationError), f"parsed is {type(v).__name__}")
        expect(isinstance(v.detail, list) and v.detail, f"detail {v.detail!r}")
        expect(all(isinstance(d.loc, list) and d.msg for d in v.detail), "detail items have loc and msg")
    check(f"{P} 17 metadata keys -> 422 HTTPValidationError with detail list", validation)

    def delete():
        r = f_delete.sync_detailed(st["t1"], client=client)
        expect_eq(r.status_code, 204, "delete status", ctx=r.content)
        expect_eq(r.content, b"", "delete body")
        expect_eq(r.parsed, None, "parsed")
    check(f"{P} delete -> 204 empty", delete)

    def get_deleted():
        r = f_get.sync_detailed(st["t1"], client=client)
        expect_eq(r.status_code, 404, "get after delete status")
    check(f"{P} get deleted -> 404", get_deleted)

    def delete_all():
        r = hx.delete("/v1/threads", params={"organization_id": ORG})
        expect_eq(r.status_code, 200, "delete-all status", ctx=body_of(r))
        b = r.json()
        expect_eq(b.get("deleted"), len(st["ids"]) - 1, "deleted count")
        expect(isinstance(b.get("message"), str) and b["message"], f"message {b.get('message')!r}")
        lr = f_list.sync_detailed(client=client, organization_id=ORG, limit=PAGE)
        expect_eq([x.id for x in lr.parsed.data], [], "list after delete-all")
    check(f"{P} delete-all (raw httpx) -> deleted={EXTRA_THREADS}, message", delete_all)

    client.get_httpx_client().close()


# --------------------------------------------------------------------------------------------
# aitronos-sdk 5.0.0
# --------------------------------------------------------------------------------------------
def aitronos_section():
    P = "aitronos:"
    client = Aitronos(base_url=BASE_URL, api_key=API_KEY, timeout=30)   # sends x-api-key
    th = client.threads
    st = {}

    def reset():
        r = th.delete_all_threads(organization_id=ORG, request_options=NO_RETRY)
        expect(isinstance(r, DeleteAllThreadsResponse), f"parsed is {type(r).__name__}")
    check(f"{P} delete-all at start (clean state)", reset)

    def create():
        raw = th.with_raw_response.create_thread(organization_id=ORG, title="aitronos t1", metadata=MD_CREATE,
                                                 request_options=NO_RETRY)
        expect_eq(raw.status_code, 201, "create status")
        t = raw.data
        expect(isinstance(t, AThread), f"parsed is {type(t).__name__}")
        expect(t.id.startswith("thread_"), f"id {t.id!r}")
        expect_eq(t.organization_id, ORG, "organization_id")
        expect_eq(t.metadata, MD_CREATE, "metadata")
        expect_eq(t.is_pinned, False, "is_pinned")
        expect_eq(t.space_ids, [], "space_ids")
        expect_eq(t.status, "inactive", "status")
        st["t1"] = t.id
    check(f"{P} create -> 201 ThreadResponse", create)

    def get():
        t = th.get_thread(st["t1"], request_options=NO_RETRY)
        expect(isinstance(t, AThread), f"parsed is {type(t).__name__}")
        expect_eq(t.id, st["t1"], "id")
        expect_eq(t.title, "aitronos t1", "title")
        expect_eq(t.metadata, MD_CREATE, "metadata")
    check(f"{P} get -> ThreadResponse", get)

    def create_more():
        ids = [st["t1"]]
        for i in range(EXTRA_THREADS):
            raw = th.with_raw_response.create_thread(organization_id=ORG, title=f"aitronos t{i + 2}",
                                                     request_options=NO_RETRY)
            expect_eq(raw.status_code, 201, f"create #{i + 2} status")
            ids.append(raw.data.id)
        expect_eq(len(set(ids)), len(ids), "distinct ids")
        st["ids"] = ids
    check(f"{P} create {EXTRA_THREADS} more threads", create_more)

    def walk():
        seen, after, pages = [], None, 0
        while True:
            p = th.list_threads(organization_id=ORG, limit=PAGE, after=after, request_options=NO_RETRY)
            expect(isinstance(p, AThreadList), f"parsed is {type(p).__name__}")
            pages += 1
            page_ids = [x.id for x in p.data]
            expect(len(page_ids) <= PAGE, f"page {pages} has {len(page_ids)} items > limit")
            if page_ids:
                expect_eq(p.first_id, page_ids[0], f"page {pages} first_id")
                expect_eq(p.last_id, page_ids[-1], f"page {pages} last_id")
            seen += page_ids
            if not p.has_more:
                break
            expect(page_ids, f"page {pages} empty but has_more")
            after = p.last_id
            expect(pages < 50, "too many pages")
        expect_eq(len(seen), len(set(seen)), f"duplicates in walk {seen}")
        expected = list(reversed(st["ids"]))   # newest first by default
        expect_eq(seen, expected, "walk order/content")
        expect_eq(pages, -(-len(expected) // PAGE), "page count")
    check(f"{P} list walk after=last_id limit={PAGE}: no dups, no skips, newest first", walk)

    def patch():
        t = th.update_thread(st["t1"], metadata=MD_PATCH, request_options=NO_RETRY)
        expect(isinstance(t, AThread), f"parsed is {type(t).__name__}")
        expect_eq(t.metadata, MD_EXPECTED, "merged metadata")
        expect_eq(t.title, "aitronos t1", "title unchanged")
        expect_eq(th.get_thread(st["t1"], request_options=NO_RETRY).metadata, MD_EXPECTED, "metadata after re-get")
    check(f"{P} patch metadata merge (null removes key)", patch)

    def pin():
        tid = st["ids"][1]
        p = th.pin_thread(tid, request_options=NO_RETRY)
        expect(isinstance(p, PinThreadResponse), f"parsed is {type(p).__name__}")
        expect_eq(p.id, tid, "id")
        expect_eq(p.is_pinned, True, "is_pinned")
        expect(p.pinned_at is not None, "pinned_at set")
        expect_eq(th.get_thread(tid, request_options=NO_RETRY).is_pinned, True, "is_pinned on get")
    check(f"{P} pin -> is_pinned true, pinned_at set", pin)

    def unpin():
        tid = st["ids"][1]
        p = th.unpin_thread(tid, request_options=NO_RETRY)
        expect_eq(p.is_pinned, False, "is_pinned")
        expect_eq(p.pinned_at, None, "pinned_at")
        g = th.get_thread(tid, request_options=NO_RETRY)
        expect_eq((g.is_pinned, g.pinned_at), (False, None), "is_pinned/pinned_at on get")
    check(f"{P} unpin -> is_pinned false, pinned_at null", unpin)

    def validation():
        try:
            th.create_thread(organization_id=ORG, metadata=MD_TOO_MANY, request_options=NO_RETRY)
        except ApiError as e:
            expect_eq(e.status_code, 422, "status", ctx=e.body)
            expect(isinstance(e.body, dict), f"body {e.body!r}")
            v = HTTPValidationError.from_dict(e.body)   # the same body, as freddy parses it
            expect(isinstance(v.detail, list) and v.detail, f"detail {e.body.get('detail')!r}")
            expect_eq(e.body.get("error", {}).get("code"), "VALIDATION_ERROR", "error.code")
            return
        raise AssertionError("expected ApiError 422, the thread was created")
    check(f"{P} 17 metadata keys -> ApiError 422 with detail list", validation)

    def delete():
        raw = th.with_raw_response.delete_thread(st["t1"], request_options=NO_RETRY)
        expect_eq(raw.status_code, 204, "delete status")
        expect_eq(raw.data, None, "data")
    check(f"{P} delete -> 204", delete)

    def get_deleted():
        try:
            th.get_thread(st["t1"], request_options=NO_RETRY)
        except ApiError as e:
            expect_eq(e.status_code, 404, "status", ctx=e.body)
            return
        raise AssertionError("expected ApiError 404, got a thread")
    check(f"{P} get deleted -> ApiError 404", get_deleted)

    def delete_all():
        d = th.delete_all_threads(organization_id=ORG, request_options=NO_RETRY)
        expect(isinstance(d, DeleteAllThreadsResponse), f"parsed is {type(d).__name__}")
        expect_eq(d.deleted, len(st["ids"]) - 1, "deleted count")
        expect(isinstance(d.message, str) and d.message, f"message {d.message!r}")
        expect_eq(th.list_threads(organization_id=ORG, request_options=NO_RETRY).data, [], "list after delete-all")
    check(f"{P} delete-all -> deleted={EXTRA_THREADS}, message", delete_all)


for section in (freddy_section, aitronos_section):
    try:
        section()
    except Exception as e:  # noqa: BLE001 - a broken section must not hide the other one
        aborted(e)

finish()
