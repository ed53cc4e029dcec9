-- SPDX-License-Identifier: MIT
-- Core schema: accounts, roles and permissions, plans and features, subscriptions,
-- sessions and refresh tokens, one-time tokens, quotas, the email outbox, settings,
-- login throttling and the partitioned audit log.
--
-- Conventions: uuid keys from gen_random_uuid(); timestamptz for every instant; money in
-- integer paise; every status column has a CHECK; constraints that the server maps to API
-- errors carry stable names (the name is what libpq reports in PG_DIAG_CONSTRAINT_NAME).

-- One trigger function for every updated_at column, so the column cannot drift from the
-- data when a writer forgets it. The triggers skip no-op updates (WHEN clause below), so
-- an UPDATE that changes nothing does not look like a change.
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Why a session ended, and why a refresh token was revoked: one vocabulary for both,
-- because revoking a session's tokens always happens for the session's reason.
CREATE DOMAIN session_end_reason AS text
    CONSTRAINT session_end_reason_check CHECK (VALUE IN (
        'logout',               -- POST /api/auth/logout
        'ended_by_user',        -- DELETE /api/sessions/:id
        'password_changed',
        'password_reset',
        'user_deleted',
        'role_changed',         -- an administrator changed the role
        'refresh_token_reuse',  -- a rotated refresh token came back
        'idle_timeout',
        'expired'
    ));

-- ---------------------------------------------------------------------------------------
-- Roles and permissions

CREATE TABLE roles (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    name            text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    -- Administrators may only act on users strictly below their own level.
    privilege_level integer     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_pkey PRIMARY KEY (id),
    CONSTRAINT roles_name_key UNIQUE (name),
    CONSTRAINT roles_name_check CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT roles_privilege_level_check CHECK (privilege_level BETWEEN 0 AND 100)
);

CREATE TABLE permissions (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT permissions_pkey PRIMARY KEY (id),
    CONSTRAINT permissions_name_key UNIQUE (name),
    CONSTRAINT permissions_name_check CHECK (char_length(name) BETWEEN 1 AND 64)
);

-- A grant is meaningless once either side is gone, so both sides cascade.
CREATE TABLE role_permissions (
    role_id       uuid        NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id uuid        NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT role_permissions_pkey PRIMARY KEY (role_id, permission_id)
);

CREATE INDEX role_permissions_permission_idx ON role_permissions (permission_id);

-- ---------------------------------------------------------------------------------------
-- Plans and features

CREATE TABLE features (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    category    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT features_pkey PRIMARY KEY (id),
    CONSTRAINT features_name_key UNIQUE (name),
    CONSTRAINT features_name_check CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT features_category_check CHECK (char_length(category) BETWEEN 1 AND 64)
);

CREATE TABLE subscription_plans (
    id                         uuid        NOT NULL DEFAULT gen_random_uuid(),
    name                       text        NOT NULL,
    description                text        NOT NULL DEFAULT '',
    -- Orders plans for display and picks the recommended upgrade (lowest tier that has
    -- the features), so two plans may not share one.
    tier                       integer     NOT NULL,
    price_monthly_paise        bigint      NOT NULL,
    billing_period_days        integer     NOT NULL,
    max_api_requests_per_month bigint      NOT NULL,
    trial_period_days          integer     NOT NULL DEFAULT 0,
    -- Inactive plans are hidden from new subscribers; existing subscriptions keep them.
    is_active                  boolean     NOT NULL DEFAULT true,
    is_featured                boolean     NOT NULL DEFAULT false,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscription_plans_pkey PRIMARY KEY (id),
    CONSTRAINT subscription_plans_tier_key UNIQUE (tier),
    CONSTRAINT subscription_plans_name_check
        CHECK (char_length(name) BETWEEN 1 AND 64 AND name = btrim(name)),
    CONSTRAINT subscription_plans_tier_check CHECK (tier >= 0),
    CONSTRAINT subscription_plans_price_monthly_paise_check
        CHECK (price_monthly_paise >= 0),
    CONSTRAINT subscription_plans_billing_period_days_check
        CHECK (billing_period_days > 0),
    CONSTRAINT subscription_plans_max_api_requests_per_month_check
        CHECK (max_api_requests_per_month >= 0),
    CONSTRAINT subscription_plans_trial_period_days_check CHECK (trial_period_days >= 0)
);

-- Plans are addressed by name in URLs and request bodies, where 'pro' and 'Pro' must mean
-- the same plan; look them up with lower(name) = lower($1).
CREATE UNIQUE INDEX subscription_plans_name_key ON subscription_plans (lower(name));

CREATE TABLE plan_features (
    plan_id    uuid        NOT NULL REFERENCES subscription_plans (id) ON DELETE CASCADE,
    feature_id uuid        NOT NULL REFERENCES features (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plan_features_pkey PRIMARY KEY (plan_id, feature_id)
);

CREATE INDEX plan_features_feature_idx ON plan_features (feature_id);

-- ---------------------------------------------------------------------------------------
-- Accounts

CREATE TABLE user_accounts (
    id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- Stored trimmed and lower-cased; lower-case it in SQL (lower($1)) so that the server
    -- and this CHECK agree on what lower case is.
    email              text        NOT NULL,
    -- A PHC string: argon2id, or an imported bcrypt hash until its next successful login.
    password_hash      text        NOT NULL,
    first_name         text,
    last_name          text,
    phone_number       text,
    -- A role still held by users cannot be deleted: reassign them first.
    role_id            uuid        NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    is_active          boolean     NOT NULL DEFAULT true,
    is_verified        boolean     NOT NULL DEFAULT false,
    two_factor_enabled boolean     NOT NULL DEFAULT false,
    -- Encrypted by the server before it gets here (opaque bytes); a setup that is not
    -- confirmed yet leaves a secret with two_factor_enabled still false.
    two_factor_secret  bytea,
    -- The last TOTP time step accepted, so no code of that step or earlier works again.
    totp_last_step     bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_login_at      timestamptz,
    -- Soft delete: the row, its history and its audit trail stay.
    deleted_at         timestamptz,
    CONSTRAINT user_accounts_pkey PRIMARY KEY (id),
    CONSTRAINT user_accounts_email_check CHECK (
        email = lower(btrim(email))
        AND char_length(email) <= 254
        AND email LIKE '_%@_%'),
    CONSTRAINT user_accounts_password_hash_check CHECK (password_hash <> ''),
    CONSTRAINT user_accounts_first_name_check CHECK (char_length(first_name) <= 100),
    CONSTRAINT user_accounts_last_name_check CHECK (char_length(last_name) <= 100),
    CONSTRAINT user_accounts_phone_number_check CHECK (phone_number ~ '^\+[0-9]{7,15}$'),
    CONSTRAINT user_accounts_two_factor_check
        CHECK (NOT two_factor_enabled OR two_factor_secret IS NOT NULL),
    CONSTRAINT user_accounts_totp_last_step_check CHECK (totp_last_step >= 0),
    -- A deleted account can never be active again by accident.
    CONSTRAINT user_accounts_deleted_check CHECK (deleted_at IS NULL OR NOT is_active)
);

-- One index serves all three email access paths: uniqueness, lookup by
-- lower(email) = lower($1), and the admin prefix search lower(email) LIKE 'abc%'
-- (text_pattern_ops makes LIKE prefixes indexable under any collation, and its = is
-- ordinary text equality). Queries must say lower(email), not email, to use it. The
-- search term must have \, % and _ escaped to match literally, and LIKE $1 is indexable
-- only when planned with its value (PQexecParams, or a custom plan of a prepared one).
--
-- It covers soft-deleted rows on purpose: the address stays reserved. A deleted user who
-- logs in with the right password must get AccountDisabled, which needs the address to
-- still mean that one account; letting a newcomer register it would make one address
-- name two accounts at login and password reset. Freeing an address is a deliberate
-- act: change or purge the deleted row.
CREATE UNIQUE INDEX user_accounts_email_key
    ON user_accounts (lower(email) text_pattern_ops);

-- The admin user list pages by creation time; id breaks ties so pages are stable.
CREATE INDEX user_accounts_created_at_idx ON user_accounts (created_at, id);

-- Counting users per role (analytics, "does a superadmin exist" at start-up) and the
-- RESTRICT check when a role is deleted.
CREATE INDEX user_accounts_role_idx ON user_accounts (role_id);

-- Payments point at accounts and plans (see 001). Payment records are kept for accounting:
-- an account or plan with payments cannot be hard-deleted (accounts are soft-deleted,
-- plans deactivated).
ALTER TABLE payment_transactions
    ADD CONSTRAINT payment_transactions_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES user_accounts (id) ON DELETE RESTRICT,
    ADD CONSTRAINT payment_transactions_plan_id_fkey
        FOREIGN KEY (plan_id) REFERENCES subscription_plans (id) ON DELETE RESTRICT;

-- ---------------------------------------------------------------------------------------
-- Subscriptions

CREATE TABLE user_subscriptions (
    id                     uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- Subscription rows are state, not money (payments hold the money and RESTRICT a
    -- hard delete of their user), so they go with the account.
    user_id                uuid        NOT NULL
        REFERENCES user_accounts (id) ON DELETE CASCADE,
    -- A plan that has ever been subscribed to is deactivated, never deleted.
    plan_id                uuid        NOT NULL
        REFERENCES subscription_plans (id) ON DELETE RESTRICT,
    -- 'active' rows whose ends_at has passed count as expired everywhere (see the view
    -- below) until a sweep rewrites the row, so correctness never waits for the sweep.
    status                 text        NOT NULL DEFAULT 'pending',
    is_trial               boolean     NOT NULL DEFAULT false,
    starts_at              timestamptz NOT NULL DEFAULT now(),
    -- NULL: never expires (Free).
    ends_at                timestamptz,
    auto_renew             boolean     NOT NULL DEFAULT true,
    -- When the user turned renewal off or switched away; access may continue to ends_at.
    cancelled_at           timestamptz,
    -- The payment that started (or last renewed) this subscription. Payments are kept.
    payment_transaction_id uuid
        REFERENCES payment_transactions (id) ON DELETE RESTRICT,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_subscriptions_pkey PRIMARY KEY (id),
    CONSTRAINT user_subscriptions_status_check
        CHECK (status IN ('active', 'cancelled', 'expired', 'pending')),
    CONSTRAINT user_subscriptions_period_check CHECK (ends_at IS NULL OR ends_at > starts_at),
    -- One payment pays for one subscription; the webhook finds it through this key.
    CONSTRAINT user_subscriptions_payment_transaction_key UNIQUE (payment_transaction_id)
);

-- Every decision reads "the" active subscription, so there is at most one. The index is
-- checked row by row, so a plan switch retires the old row before activating the new one.
CREATE UNIQUE INDEX user_subscriptions_one_active_key
    ON user_subscriptions (user_id) WHERE status = 'active';

-- A user gets one trial in a lifetime; a second attempt fails here and maps to 409.
CREATE UNIQUE INDEX user_subscriptions_one_trial_key
    ON user_subscriptions (user_id) WHERE is_trial;

CREATE INDEX user_subscriptions_user_status_idx ON user_subscriptions (user_id, status);

-- Expiry and "expiring in 3 days" sweeps look only at active rows that can end.
CREATE INDEX user_subscriptions_active_ends_at_idx
    ON user_subscriptions (ends_at) WHERE status = 'active' AND ends_at IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- Sessions and refresh tokens

-- last_activity is rewritten often and is not indexed, so those updates stay HOT; the
-- free space left in each page is what lets them.
CREATE TABLE sessions (
    id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- Sessions are worthless without their user.
    user_id       uuid        NOT NULL REFERENCES user_accounts (id) ON DELETE CASCADE,
    ip_address    inet,
    user_agent    text,
    device_type   text        NOT NULL DEFAULT 'unknown',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_activity timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    end_reason    session_end_reason,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_device_type_check
        CHECK (device_type IN ('desktop', 'mobile', 'tablet', 'bot', 'unknown')),
    CONSTRAINT sessions_expires_at_check CHECK (expires_at > created_at),
    -- Ending a session always records why (it drives the audit entry and the console).
    CONSTRAINT sessions_end_check CHECK ((ended_at IS NULL) = (end_reason IS NULL))
) WITH (fillfactor = 90);

-- Live sessions of a user: the sessions list, logout, password change, role change.
-- Ended sessions are history and stay out of the index. (A hard delete of a user then
-- scans sessions for the cascade; that is rare, accounts are soft-deleted.)
CREATE INDEX sessions_user_active_idx ON sessions (user_id) WHERE ended_at IS NULL;

-- Refresh tokens. Only the SHA-256 of a token is stored, never the token. A session is
-- the rotation family: refreshing marks the presented token 'rotated' and points
-- replaced_by at its successor; a 'rotated' token presented again revokes every token of
-- its session.
CREATE TABLE tokens (
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    token_hash     bytea       NOT NULL,
    user_id        uuid        NOT NULL REFERENCES user_accounts (id) ON DELETE CASCADE,
    session_id     uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    status         text        NOT NULL DEFAULT 'active',
    -- Purging old tokens must not be blocked by the chain that points at them.
    replaced_by    uuid        REFERENCES tokens (id) ON DELETE SET NULL,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- When the token stopped being usable, by rotation or revocation.
    revoked_at     timestamptz,
    revoked_reason session_end_reason,
    CONSTRAINT tokens_pkey PRIMARY KEY (id),
    CONSTRAINT tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT tokens_status_check CHECK (status IN ('active', 'rotated', 'revoked')),
    CONSTRAINT tokens_expires_at_check CHECK (expires_at > created_at),
    CONSTRAINT tokens_revoked_at_check CHECK ((status = 'active') = (revoked_at IS NULL)),
    CONSTRAINT tokens_revoked_reason_check
        CHECK ((status = 'revoked') = (revoked_reason IS NOT NULL))
);

CREATE INDEX tokens_session_idx ON tokens (session_id);

-- "Revoke every refresh token of the user" (logout, password change) touches live ones.
CREATE INDEX tokens_user_active_idx ON tokens (user_id) WHERE status = 'active';

-- Without it, each deleted token would scan the table for the ON DELETE SET NULL.
CREATE INDEX tokens_replaced_by_idx ON tokens (replaced_by) WHERE replaced_by IS NOT NULL;

-- Purging tokens past expiry.
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at);

-- Single-use tokens sent by email (verification, password reset); as with refresh tokens,
-- only the SHA-256 is stored.
CREATE TABLE one_time_tokens (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    token_hash bytea       NOT NULL,
    user_id    uuid        NOT NULL REFERENCES user_accounts (id) ON DELETE CASCADE,
    purpose    text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT one_time_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT one_time_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT one_time_tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT one_time_tokens_purpose_check
        CHECK (purpose IN ('verify_email', 'password_reset')),
    CONSTRAINT one_time_tokens_expires_at_check CHECK (expires_at > created_at)
);

-- Throttles reset requests (how many for this user in the last 15 minutes) and finds a
-- user's outstanding tokens to void them.
CREATE INDEX one_time_tokens_user_purpose_idx
    ON one_time_tokens (user_id, purpose, created_at);

-- ---------------------------------------------------------------------------------------
-- Monthly API quota

-- One row per user and UTC calendar month. A server process takes a block of the remaining
-- quota in one atomic UPDATE (leased += n, only while used + leased + n stays within the
-- plan's limit), serves from it in memory, and settles on flush or shutdown
-- (used += served, leased -= n). A crashed process leaves its block leased: the user is
-- under-served for the rest of the month, never over-served.
-- Frequent updates of unindexed columns: leave room in each page for HOT updates.
CREATE TABLE quota_usage (
    user_id      uuid        NOT NULL REFERENCES user_accounts (id) ON DELETE CASCADE,
    -- First day of the month in UTC; the quota resets at 00:00 UTC on the next first day.
    period_start date        NOT NULL,
    used         bigint      NOT NULL DEFAULT 0,
    leased       bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT quota_usage_pkey PRIMARY KEY (user_id, period_start),
    CONSTRAINT quota_usage_period_start_check CHECK (extract(day FROM period_start) = 1),
    CONSTRAINT quota_usage_used_check CHECK (used >= 0),
    CONSTRAINT quota_usage_leased_check CHECK (leased >= 0)
) WITH (fillfactor = 80);

-- ---------------------------------------------------------------------------------------
-- Email outbox

-- Rows are written in the same transaction as the change that causes the email, so a
-- message exists exactly when its cause committed, and a notifier crash loses nothing.
-- The notifier claims rows with FOR UPDATE SKIP LOCKED, sets 'sending' and pushes
-- next_attempt_at past its send timeout, so a row whose claimant died becomes due again.
-- payload holds what the template needs, including a verification or reset token: the
-- notifier should strip tokens from it once the row is 'sent' or 'dead'.
CREATE TABLE email_outbox (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    to_address      text        NOT NULL,
    to_name         text,
    template        text        NOT NULL,
    payload         jsonb       NOT NULL DEFAULT '{}',
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    -- Lets periodic sweeps (subscription expiring / expired), which may run in several
    -- processes, enqueue with ON CONFLICT DO NOTHING and send each notice once.
    dedupe_key      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT email_outbox_pkey PRIMARY KEY (id),
    CONSTRAINT email_outbox_dedupe_key UNIQUE (dedupe_key),
    CONSTRAINT email_outbox_to_address_check
        CHECK (char_length(to_address) <= 254 AND to_address LIKE '_%@_%'),
    CONSTRAINT email_outbox_template_check CHECK (template IN (
        'verify_email', 'password_reset', 'subscription_expiring', 'subscription_expired')),
    CONSTRAINT email_outbox_payload_check CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT email_outbox_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
    CONSTRAINT email_outbox_attempts_check CHECK (attempts >= 0),
    CONSTRAINT email_outbox_sent_check CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

-- The notifier's poll: due rows, oldest due first. Sent and dead rows stay out of it.
CREATE INDEX email_outbox_pending_idx
    ON email_outbox (next_attempt_at) WHERE status = 'pending';

-- Claims abandoned by a crashed notifier.
CREATE INDEX email_outbox_sending_idx
    ON email_outbox (next_attempt_at) WHERE status = 'sending';

-- ---------------------------------------------------------------------------------------
-- Settings

CREATE TABLE settings (
    key        text        NOT NULL,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Who changed it last; the setting outlives that administrator's account.
    updated_by uuid        REFERENCES user_accounts (id) ON DELETE SET NULL,
    CONSTRAINT settings_pkey PRIMARY KEY (key),
    CONSTRAINT settings_key_check CHECK (char_length(key) BETWEEN 1 AND 128)
);

-- ---------------------------------------------------------------------------------------
-- Login throttling

-- Failed logins only: the throttle counts failures per email in a 15-minute window, a
-- successful login deletes the email's rows, throttled attempts are not written. Keyed by
-- the email as typed (lower-cased), not by account, so unknown emails are throttled the
-- same way and the answer does not reveal which emails exist. No foreign key for the
-- same reason.
CREATE TABLE login_attempts (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    email        text        NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    ip_address   inet,
    CONSTRAINT login_attempts_pkey PRIMARY KEY (id),
    CONSTRAINT login_attempts_email_check CHECK (email = lower(email))
);

CREATE INDEX login_attempts_email_attempted_at_idx
    ON login_attempts (email, attempted_at);

-- Purging rows older than the window; rows arrive in time order, so BRIN is enough.
CREATE INDEX login_attempts_attempted_at_brin ON login_attempts USING brin (attempted_at);

-- ---------------------------------------------------------------------------------------
-- Audit log

-- Partitioned by month so retention is a DROP of a whole partition, not a huge DELETE.
-- There is deliberately no foreign key to user_accounts: audit rows must outlive any
-- change to the account (even a hard delete), a key would make every batch insert check
-- the parent, and partitions could not be dropped or detached cheaply. user_id is a
-- plain uuid (NULL for anonymous events such as a login with an unknown email).
-- The primary key includes created_at because a unique key on a partitioned table must
-- contain the partition key.
CREATE TABLE audit_logs (
    id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id       uuid,
    event_type    text        NOT NULL,
    resource_type text,
    -- text, not uuid: some resources are keyed by name (settings keys, plan names).
    resource_id   text,
    action        text,
    status        text        NOT NULL DEFAULT 'success',
    -- Never a password, token or secret.
    details       jsonb       NOT NULL DEFAULT '{}',
    ip_address    inet,
    user_agent    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_logs_pkey PRIMARY KEY (id, created_at),
    CONSTRAINT audit_logs_event_type_check CHECK (event_type IN (
        'register', 'login', 'logout', 'token_refresh', 'refresh_token_reuse',
        'password_reset_requested', 'password_reset', 'password_changed',
        'email_verified', 'permission_denied', 'data_access', 'profile_update',
        'session_ended', 'user_deleted', 'role_changed', 'subscription_changed',
        'payment', 'settings_changed', 'role_created', 'feature_created',
        'plan_changed')),
    CONSTRAINT audit_logs_status_check CHECK (status IN ('success', 'failure')),
    CONSTRAINT audit_logs_details_check CHECK (jsonb_typeof(details) = 'object')
) PARTITION BY RANGE (created_at);

-- A user's own events (data export, admin filter by user), newest first.
CREATE INDEX audit_logs_user_created_idx ON audit_logs (user_id, created_at DESC);
-- Admin filter by event type and the 24-hour login and denial counts.
CREATE INDEX audit_logs_event_type_created_idx ON audit_logs (event_type, created_at DESC);
-- The unfiltered admin list, newest first, and `since=`.
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at DESC);

-- Catches rows for a month whose partition does not exist yet, so the audit writer never
-- fails an insert; audit_logs_ensure_partition moves them out when the month is created.
CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;

-- Creates the partition audit_logs_yYYYYmMM holding the UTC calendar month that contains
-- `month`, and returns it; an existing partition is returned untouched, so the audit
-- writer can call this on every start and daily for the coming months.
-- The partition is built detached and then attached: ATTACH needs only a SHARE UPDATE
-- EXCLUSIVE lock on audit_logs, so inserts into other months go on meanwhile (CREATE
-- TABLE ... PARTITION OF would lock out all audit writes). Rows that already landed in the
-- default partition for that month are moved in first, or the attach would fail.
-- Bounds are UTC midnights whatever the session's TimeZone. Call it in a transaction of
-- its own: one that has already written audit rows could deadlock with another caller.
CREATE FUNCTION audit_logs_ensure_partition(month date) RETURNS regclass
LANGUAGE plpgsql
AS $$
DECLARE
    first_day   date := date_trunc('month', month::timestamp)::date;
    lower_bound text := to_char(first_day, 'YYYY-MM-DD') || ' 00:00:00+00';
    upper_bound text := to_char(first_day + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00';
    part_name   text := 'audit_logs_y' || to_char(first_day, 'YYYY')
                        || 'm' || to_char(first_day, 'MM');
    parent      regclass := 'audit_logs'::regclass;
    nsp         text;
    dflt        regclass;
    part        regclass;
BEGIN
    SELECT n.nspname INTO nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;

    part := to_regclass(format('%I.%I', nsp, part_name));
    IF part IS NOT NULL THEN
        RETURN part;
    END IF;

    -- Two processes may race to create the same month: serialize, then look again.
    -- This lock mode conflicts only with itself and DDL, so audit inserts go on;
    -- taking it also refreshes this backend's view of the catalog, which the second look
    -- needs (an advisory lock would not).
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
    part := to_regclass(format('%I.%I', nsp, part_name));
    IF part IS NOT NULL THEN
        RETURN part;
    END IF;

    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   nsp, part_name, parent);

    SELECT NULLIF(pt.partdefid, 0)::regclass INTO dflt
      FROM pg_partitioned_table pt
     WHERE pt.partrelid = parent;
    IF dflt IS NOT NULL THEN
        -- Held until commit: no new row for this month may slip into the default
        -- partition between the move and the attach.
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', dflt);
        EXECUTE format('WITH moved AS (DELETE FROM %s WHERE created_at >= %L '
                       'AND created_at < %L RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved',
                       dflt, lower_bound, upper_bound, nsp, part_name);
    END IF;

    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   parent, nsp, part_name, lower_bound, upper_bound);

    RETURN format('%I.%I', nsp, part_name)::regclass;
END;
$$;

-- This month and the next two; the audit writer keeps creating months ahead.
SELECT audit_logs_ensure_partition(
           (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => m))::date)
  FROM generate_series(0, 2) AS m;

-- ---------------------------------------------------------------------------------------
-- Views

-- A user with role and current subscription: the authorization cache, the profile and the
-- admin list read this. Secrets (password hash, two-factor secret) stay out of it.
-- The current subscription is the active one; a user without one (lapsed, cancelled,
-- payment still pending) gets their latest other row instead, so callers can still say
-- which plan lapsed and how. subscription_status is 'expired' once ends_at has passed,
-- whatever the row says, so no decision depends on the expiry sweep having run.
CREATE VIEW vw_users_with_subscription AS
SELECT u.id,
       u.email,
       u.first_name,
       u.last_name,
       u.phone_number,
       u.role_id,
       r.name                       AS role_name,
       r.privilege_level,
       u.is_active,
       u.is_verified,
       u.two_factor_enabled,
       u.created_at,
       u.updated_at,
       u.last_login_at,
       u.deleted_at,
       s.id                         AS subscription_id,
       s.plan_id,
       p.name                       AS plan_name,
       p.tier                       AS plan_tier,
       p.max_api_requests_per_month,
       CASE
           WHEN s.ends_at <= now() THEN 'expired'
           ELSE s.status
       END                          AS subscription_status,
       s.is_trial,
       s.starts_at,
       s.ends_at,
       s.auto_renew,
       s.cancelled_at
  FROM user_accounts u
  JOIN roles r ON r.id = u.role_id
  LEFT JOIN LATERAL (
           SELECT us.*
             FROM user_subscriptions us
            WHERE us.user_id = u.id
            ORDER BY us.status = 'active' DESC,
                     us.status <> 'pending' DESC,
                     us.starts_at DESC,
                     us.created_at DESC
            LIMIT 1
       ) s ON true
  LEFT JOIN subscription_plans p ON p.id = s.plan_id;

-- The features a user may use right now: those of an active subscription that has not
-- passed ends_at.
CREATE VIEW vw_user_features AS
SELECT us.user_id,
       f.name AS feature_name
  FROM user_subscriptions us
  JOIN plan_features pf ON pf.plan_id = us.plan_id
  JOIN features f ON f.id = pf.feature_id
 WHERE us.status = 'active'
   AND (us.ends_at IS NULL OR us.ends_at > now());

-- ---------------------------------------------------------------------------------------
-- updated_at triggers

CREATE TRIGGER payment_transactions_touch_updated_at
    BEFORE UPDATE ON payment_transactions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER roles_touch_updated_at
    BEFORE UPDATE ON roles
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER features_touch_updated_at
    BEFORE UPDATE ON features
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER subscription_plans_touch_updated_at
    BEFORE UPDATE ON subscription_plans
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER user_accounts_touch_updated_at
    BEFORE UPDATE ON user_accounts
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER user_subscriptions_touch_updated_at
    BEFORE UPDATE ON user_subscriptions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER quota_usage_touch_updated_at
    BEFORE UPDATE ON quota_usage
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER settings_touch_updated_at
    BEFORE UPDATE ON settings
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
