//! An `Idempotency-Key` claimed with the request's own first write, run on
//! SQLite and on PostgreSQL.

use super::{new_thread, scope, setup};
use chrono::TimeDelta;
use skein_domain::clock;
use skein_persistence::connection::write_transaction;
use skein_persistence::idempotency::{self, Claim, Deferred, KeyRequest};
use skein_persistence::{threads, Backend, DbConnection, StoreError};

skein_persistence::on_both_backends!(a_key_is_claimed_with_the_requests_first_write);

fn a_key_is_claimed_with_the_requests_first_write(backend: Backend) {
    let (_db, store) = setup(backend);
    let who = scope("org_a", "usr_1");
    let mut conn = store.conn().unwrap();
    let mut other = store.conn().unwrap();
    let now = clock::now();
    let request = |key: &str, fingerprint: &str| KeyRequest {
        user: "usr_1".into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        now,
        hold: TimeDelta::minutes(15),
    };
    let free = |conn: &mut DbConnection, key: &str| {
        Deferred::read(conn, request(key, "fp"))
            .unwrap()
            .expect("the key is free")
    };

    // A write that rolls back takes no claim with it: the key stays free
    // (another request may take it) and the claim waits for the next write.
    let claim = free(&mut conn, "k1");
    let failed = write_transaction(&mut conn, |_| {
        Err::<(), _>(StoreError::Conflict("the step failed".into()))
    });
    assert!(failed.is_err());
    let theirs = idempotency::claim(&mut other, &request("k1", "other-fp")).unwrap();
    assert_eq!(theirs, Claim::New, "the rolled-back claim was not kept");
    // The next write finds the key taken by that other request: it rolls
    // back too, and says so.
    let thread = new_thread(&who, None);
    let taken = threads::insert(&mut conn, &thread);
    assert!(matches!(taken, Err(StoreError::KeyTaken)), "{taken:?}");
    assert!(threads::find(&mut conn, &who, thread.id().as_str())
        .unwrap()
        .is_none());
    assert_eq!(claim.finish(&mut conn).unwrap(), Claim::Reused);

    // A write that commits commits the claim with it.
    let claim = free(&mut conn, "k2");
    threads::insert(&mut conn, &new_thread(&who, None)).unwrap();
    assert_eq!(claim.finish(&mut conn).unwrap(), Claim::New);
    let again = idempotency::claim(&mut other, &request("k2", "fp")).unwrap();
    assert_eq!(again, Claim::InProgress);

    // A step that writes nothing: the claim is made when its trip ends.
    let claim = free(&mut conn, "k3");
    assert_eq!(claim.finish(&mut conn).unwrap(), Claim::New);
    let again = idempotency::claim(&mut other, &request("k3", "fp")).unwrap();
    assert_eq!(again, Claim::InProgress);
    // Its write after the trip no longer claims anything.
    threads::insert(&mut conn, &new_thread(&who, None)).unwrap();
}
