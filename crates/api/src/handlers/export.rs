//! `GET /v1/threads/export`: the caller's threads with their messages as
//! NDJSON, one thread per line, streamed in constant memory.

use crate::auth::{Caller, Identity};
use crate::dto::{ListThreadsQuery, OrderDto};
use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::extract::QueryParams;
use crate::request_id;
use actix_web::{get, web, HttpRequest, HttpResponse};
use skein_domain::OrganizationId;
use skein_persistence::export::{
    self, line_head, line_messages, ExportEntry, LINE_TAIL, MESSAGE_CHUNK, THREAD_PAGE,
};
use skein_persistence::{Scope, ThreadQuery};
use tokio::sync::mpsc;

type Result<T> = std::result::Result<T, ApiError>;

/// Pieces of the body the producer may be ahead of the client.
const CHANNEL_PIECES: usize = 8;

/// The media type of the answer.
pub const NDJSON: &str = "application/x-ndjson";

/// 422 for the list parameters that have no meaning for an export.
fn refuse_paging(q: &ListThreadsQuery) -> Result<()> {
    let given = [
        ("limit", q.limit.is_some()),
        ("after", q.after.is_some()),
        ("before", q.before.is_some()),
        ("include_total", q.include_total.is_some()),
    ];
    let errors: Vec<FieldError> = given
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| {
            FieldError::new(
                &["query", name],
                format!("{name} does not apply to an export, which holds every matching thread"),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Export threads.
///
/// The caller's threads with all their messages as NDJSON
/// (`application/x-ndjson`): one line per thread,
/// `{"thread": {...}, "messages": [...]}`, in the order and with the
/// filters of `GET /v1/threads` (`limit`, `after`, `before` and
/// `include_total` do not apply: 422). The thread record holds what it
/// takes to recreate the thread (`skein import`): ids, owner, title,
/// metadata, assistant, lifecycle, pin, incognito deadline, timestamps,
/// counts, read state, the owner's settings (`user_state`) and
/// `forked_from`; each message its id, `seq`, role, `kind` (`message` or
/// the type of an OpenAI item), stored `content` (an item's JSON as text),
/// token count, metadata, attachments, response id, model and timestamps.
/// A fork's line holds its whole history. No matching thread: an empty
/// body. The export is read a page at a time (not one snapshot): a thread
/// written meanwhile may be exported as it was before or after. An error
/// before the first byte answers the usual envelope; a failure after it
/// aborts the answer with its chunked transfer unfinished (an HTTP client
/// reports an error), so a cut export is never taken for a whole one. A user
/// token in several organizations without `organization_id` gets each
/// organization's threads in turn.
#[utoipa::path(
    tag = "threads",
    operation_id = "export_threads",
    params(
        ("organization_id" = Option<String>, Query, description = "Organization (defaults to the caller's only one; a user token in several exports all of them)."),
        ("order" = inline(Option<OrderDto>), Query, description = "`asc` (oldest first, the default here, so that an import keeps the list's order) or `desc`, by creation time."),
        ("assistant_id" = Option<String>, Query, description = "Only threads bound to this assistant."),
        ("visible_in_ui" = Option<bool>, Query, description = "Only visible (true) or hidden (false) threads; default: both."),
        ("is_pinned" = Option<bool>, Query, description = "Only pinned (true) or unpinned (false) threads."),
        ("include_deleted" = Option<bool>, Query, description = "Also export soft-deleted threads (their record carries `deleted_at`)."),
        ("workflow_id" = Option<String>, Query, description = "Only threads with this `workflow_id`."),
        ("search" = Option<String>, Query, max_length = 200, description = "Only threads whose title contains this text, ignoring case; at most 200 characters."),
        ("state" = Option<String>, Query, description = "Only threads in this lifecycle state: `open`, `locked` or `archived`."),
        ("created_after" = Option<String>, Query, format = DateTime, description = "Only threads created after this time (RFC 3339)."),
        ("created_before" = Option<String>, Query, format = DateTime, description = "Only threads created before this time (RFC 3339)."),
        ("updated_after" = Option<String>, Query, format = DateTime, description = "Only threads changed after this time (RFC 3339; `updated_at`)."),
        ("metadata[KEY]" = Option<String>, Query, description = "Only threads whose metadata holds KEY with this string value; up to 16, all must hold (for example `metadata[team]=support&metadata[tier]=gold`)"),
    ),
    responses(
        (status = 200, description = "NDJSON, one `{\"thread\": {...}, \"messages\": [...]}` per line (empty when no thread matches)", content_type = "application/x-ndjson", body = String),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (a filter, or `limit`/`after`/`before`/`include_total`, which do not apply)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/threads/export")]
pub async fn export_threads(
    caller: Caller,
    request: HttpRequest,
    query: QueryParams<ListThreadsQuery>,
) -> Result<HttpResponse> {
    let mut q = query.0;
    refuse_paging(&q)?;
    // Oldest first unless asked otherwise: an import stores the lines in
    // file order, and the thread list follows the order threads were
    // stored in, so an export read back keeps the list's order.
    q.order = Some(q.order.unwrap_or(OrderDto::Asc));
    let (mut query, organization) =
        crate::handlers::threads::thread_query(request.query_string(), q)?;
    query.limit = THREAD_PAGE;
    query.include_total = false;
    // The first trip authenticates and reads the first page, so that every
    // refusal comes before the first byte, as the usual envelope.
    let first_query = query.clone();
    let (who, orgs, first) = caller
        .run(move |conn, who| {
            let orgs = who.listing(organization.as_deref())?;
            let first = match orgs.first() {
                Some(org) => export::thread_page(conn, &scope(who, org), &first_query)?,
                None => (Vec::new(), false),
            };
            Ok((who.clone(), orgs, first))
        })
        .await?;
    let (tx, rx) =
        mpsc::channel::<std::result::Result<web::Bytes, actix_web::Error>>(CHANNEL_PIECES);
    let trace_id = request_id::current();
    actix_web::rt::spawn(async move {
        let producer = Producer {
            caller,
            who,
            query,
            tx: tx.clone(),
        };
        if let Err(failure) = producer.run(orgs, first).await {
            let Some(e) = failure else {
                return; // The client went away.
            };
            // Logged whatever the status (report() logs 5xx only): the
            // client sees a cut transfer, the operator the cause.
            request_id::within(trace_id.clone(), || e.report());
            if !actix_web::ResponseError::status_code(&e).is_server_error() {
                log::warn!("request {trace_id}: the export stopped: {e}");
            }
            // Ends the body unfinished: the client sees a cut transfer.
            let _ = tx
                .send(Err(actix_web::error::ErrorInternalServerError(
                    "the export failed",
                )))
                .await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type(NDJSON)
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

fn scope(who: &Identity, org: &OrganizationId) -> Scope {
    Scope {
        organization_id: org.clone(),
        user_id: who.user_id.clone(),
        live: Some(who.live),
    }
}

/// Feeds the body's channel: a trip to the store per page of threads and
/// per chunk of a thread's messages (no connection is held between trips
/// or while the channel is full).
struct Producer {
    caller: Caller,
    who: Identity,
    query: ThreadQuery,
    tx: mpsc::Sender<std::result::Result<web::Bytes, actix_web::Error>>,
}

/// Why the producer stopped early: an error to report, or (`None`) the
/// client is gone.
type Stop = Option<ApiError>;

impl Producer {
    async fn send(&self, piece: Vec<u8>) -> std::result::Result<(), Stop> {
        self.tx
            .send(Ok(web::Bytes::from(piece)))
            .await
            .map_err(|_closed| None)
    }

    async fn run(
        &self,
        orgs: Vec<OrganizationId>,
        first: (Vec<ExportEntry>, bool),
    ) -> std::result::Result<(), Stop> {
        let mut first = Some(first);
        for org in &orgs {
            let scope = scope(&self.who, org);
            // The first organization's first page was read by the handler.
            let mut page = match first.take() {
                Some(page) => page,
                None => self.page(&scope, None).await?,
            };
            loop {
                let (entries, has_more) = page;
                for entry in &entries {
                    self.thread(entry).await?;
                }
                match entries.last() {
                    Some(last) if has_more => {
                        // By row id: the walk goes on if that thread is
                        // purged meanwhile.
                        page = self.page(&scope, Some(last.source.pk())).await?;
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    async fn page(
        &self,
        scope: &Scope,
        after_pk: Option<i64>,
    ) -> std::result::Result<(Vec<ExportEntry>, bool), Stop> {
        let scope = scope.clone();
        let query = ThreadQuery {
            after_pk,
            ..self.query.clone()
        };
        Ok(self
            .caller
            .run(move |conn, _| Ok(export::thread_page(conn, &scope, &query)?))
            .await?)
    }

    async fn thread(&self, entry: &ExportEntry) -> std::result::Result<(), Stop> {
        self.send(line_head(&entry.thread).map_err(ApiError::from)?)
            .await?;
        let source = entry.source;
        let mut after = i64::MIN;
        let mut first = true;
        loop {
            let chunk = self
                .caller
                .run(move |conn, _| Ok(export::messages_after(conn, source, after, MESSAGE_CHUNK)?))
                .await?;
            if !chunk.is_empty() {
                self.send(line_messages(&chunk, first).map_err(ApiError::from)?)
                    .await?;
                first = false;
            }
            match chunk.last().and_then(|m| m.seq) {
                Some(seq) if chunk.len() == MESSAGE_CHUNK as usize => after = seq,
                _ => break,
            }
        }
        self.send(LINE_TAIL.to_vec()).await
    }
}
