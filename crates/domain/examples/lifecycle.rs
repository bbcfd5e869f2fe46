//! A thread's life by the domain's rules alone: created, filled up to its
//! limit, leased by a running response, locked, archived, forked. Nothing
//! here touches storage; ids and times are passed in.
//!
//! Run: `cargo run -p skein-domain --example lifecycle` (`make test` runs it).

use chrono::{DateTime, TimeDelta, Utc};
use skein_domain::{
    DomainError, ForkPoint, ForkedFrom, Limits, Metadata, NewThread, OrganizationId, Thread,
    ThreadId, ThreadState, ThreadStatus, ThreadTitle, UserId,
};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limits = Limits {
        max_messages_per_thread: 4,
        ..Limits::default()
    };
    let t0 = at("2026-11-30T10:00:00Z");
    let thread = Thread::new(
        NewThread {
            id: ThreadId::parse("support-42")?,
            organization_id: OrganizationId::parse("org_acme")?,
            user_id: UserId::parse("usr_ada")?,
            title: ThreadTitle::parse("Billing question", limits.max_title_chars)?,
            metadata: Metadata::empty(),
            assistant_id: None,
            visible_in_ui: true,
            workflow_id: None,
            incognito_ttl: None,
        },
        t0,
    );
    println!("created {} ({:?})", thread.id(), thread.state());

    // Two messages, then a response holds the lease for 10 minutes.
    let t1 = t0 + TimeDelta::seconds(5);
    let thread = thread.record_appended(2, &limits, t1)?;
    let running = thread.acquire_lease("resp_1".into(), TimeDelta::minutes(10), t1)?;
    assert!(running.is_busy(t1));
    // A second response is refused while the first runs.
    match running.acquire_lease("resp_2".into(), TimeDelta::minutes(10), t1) {
        Err(DomainError::ThreadBusy { retry_after_secs }) => {
            println!("busy: retry after {retry_after_secs} s");
        }
        other => return Err(format!("expected busy, got {other:?}").into()),
    }
    // The response saves its turn and gives the lease back.
    let thread = running
        .record_appended(2, &limits, t1)?
        .record_model("gpt-4.1".into())
        .release_lease("resp_1");
    assert_eq!(thread.status(), ThreadStatus::Inactive);
    assert_eq!(thread.message_count(), 4);
    // The limit holds: a fifth message is refused.
    assert!(matches!(
        thread.record_appended(1, &limits, t1),
        Err(DomainError::MessageLimit { max: 4 })
    ));

    // Locked: read-only until unlocked. Archived: for good.
    let locked = thread.transition(ThreadState::Locked)?;
    assert!(matches!(
        locked.record_appended(1, &limits, t1),
        Err(DomainError::ThreadLocked)
    ));
    let archived = locked.transition(ThreadState::Archived)?;
    assert!(archived.transition(ThreadState::Open).is_err());
    println!("{:?} -> {:?}", locked.state(), archived.state());

    // A fork of the archived thread starts open, with its history counted.
    let fork = archived.fork(
        ThreadId::parse("support-42-b")?,
        ForkPoint {
            from: ForkedFrom {
                thread_id: archived.id().clone(),
                message_id: None,
            },
            messages: archived.message_count(),
            items: 0,
            last_message_at: archived.last_message_at(),
        },
        None,
        None,
        t1 + TimeDelta::seconds(1),
    );
    assert_eq!(fork.state(), ThreadState::Open);
    assert_eq!(fork.message_count(), 4);
    println!(
        "forked {} from {} with {} messages",
        fork.id(),
        archived.id(),
        fork.message_count()
    );
    Ok(())
}
