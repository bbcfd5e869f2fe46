//! The diesel schema, shared by both backends (portable column types only).
#![allow(missing_docs)]

diesel::table! {
    organizations (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    memberships (organization_id, user_id) {
        organization_id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        prefix -> Text,
        secret_hash -> Text,
        organization_id -> Text,
        user_id -> Text,
        name -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    assistants (id) {
        id -> Text,
        organization_id -> Text,
        created_by -> Text,
        name -> Text,
        instructions -> Nullable<Text>,
        model -> Nullable<Text>,
        temperature -> Nullable<Double>,
        metadata -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    threads (pk) {
        pk -> BigInt,
        id -> Text,
        organization_id -> Text,
        user_id -> Text,
        title -> Nullable<Text>,
        metadata -> Text,
        assistant_id -> Nullable<Text>,
        status -> Text,
        state -> Text,
        message_count -> BigInt,
        visible_in_ui -> Bool,
        last_model_used -> Nullable<Text>,
        pinned_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_message_at -> Nullable<Timestamp>,
        deleted_at -> Nullable<Timestamp>,
        last_seq -> BigInt,
        lease_id -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        provisional -> Bool,
        user_state -> Nullable<Text>,
        workflow_id -> Nullable<Text>,
        is_incognito -> Bool,
        expected_deletion_at -> Nullable<Timestamp>,
        title_folded -> Nullable<Text>,
        unread -> Bool,
        last_read_at -> Nullable<Timestamp>,
        changed_us -> BigInt,
        item_count -> BigInt,
        forked_from -> Nullable<Text>,
        inherited_upto -> Nullable<BigInt>,
    }
}

diesel::table! {
    thread_segments (thread_pk, source_pk) {
        thread_pk -> BigInt,
        source_pk -> BigInt,
        after_seq -> BigInt,
        upto_seq -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Text,
        key -> Text,
        fingerprint -> Text,
        state -> Text,
        status -> Nullable<Integer>,
        headers -> Nullable<Text>,
        body -> Nullable<Binary>,
        created_at -> Timestamp,
        locked_until -> Timestamp,
    }
}

diesel::table! {
    messages (pk) {
        pk -> BigInt,
        id -> Text,
        thread_pk -> BigInt,
        seq -> BigInt,
        role -> Text,
        content -> Text,
        token_count -> BigInt,
        metadata -> Text,
        attachments -> Text,
        response_id -> Nullable<Text>,
        model -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        kind -> Text,
    }
}

diesel::table! {
    responses (id) {
        id -> Text,
        organization_id -> Text,
        user_id -> Text,
        thread_id -> Nullable<Text>,
        previous_response_id -> Nullable<Text>,
        model -> Text,
        inputs -> Text,
        output_text -> Text,
        usage -> Text,
        metadata -> Text,
        created_at -> Timestamp,
        settings -> Text,
    }
}

diesel::table! {
    response_events (pk) {
        pk -> BigInt,
        thread_pk -> BigInt,
        response_id -> Text,
        first_seq -> BigInt,
        last_seq -> BigInt,
        events -> Text,
        terminal -> Bool,
        created_at -> Timestamp,
    }
}

diesel::joinable!(memberships -> organizations (organization_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(api_keys -> organizations (organization_id));
diesel::joinable!(threads -> organizations (organization_id));
diesel::table! {
    /// The trigrams of each folded title (kept by triggers).
    title_grams (gram, thread_pk) {
        gram -> Text,
        thread_pk -> BigInt,
    }
}

diesel::table! {
    /// SQLite: how many titles hold each trigram (kept by triggers).
    title_gram_counts (gram) {
        gram -> Text,
        n -> BigInt,
    }
}

diesel::joinable!(messages -> threads (thread_pk));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    users,
    memberships,
    api_keys,
    assistants,
    threads,
    messages,
    responses,
    title_grams,
    thread_segments,
);
