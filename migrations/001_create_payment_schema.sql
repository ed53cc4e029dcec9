-- SPDX-License-Identifier: MIT
-- Payments: one row per attempt to charge a user for a plan, plus the provider webhook
-- events already applied to it.
--
-- Payments are numbered first although they point at user_accounts and subscription_plans;
-- those tables arrive in 002, which adds the two foreign keys with ALTER TABLE (and the
-- updated_at trigger, whose function also lives there). The migrator always applies 001
-- and 002 together, so no code ever sees these tables without their keys.

CREATE TABLE payment_transactions (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id             uuid        NOT NULL,
    plan_id             uuid        NOT NULL,
    provider            text        NOT NULL,
    provider_order_id   text,
    provider_payment_id text,
    -- Integer paise: money never goes through floating point.
    amount_paise        bigint      NOT NULL,
    currency            char(3)     NOT NULL DEFAULT 'INR',
    status              text        NOT NULL DEFAULT 'pending',
    -- The body of the last webhook applied, kept verbatim for disputes and support.
    webhook_payload     jsonb,
    failure_reason      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_transactions_pkey PRIMARY KEY (id),
    -- Provider names are compared as stored, so one spelling only.
    CONSTRAINT payment_transactions_provider_check
        CHECK (provider ~ '^[a-z0-9_]{1,32}$'),
    CONSTRAINT payment_transactions_amount_paise_check CHECK (amount_paise >= 0),
    -- char(3) pads short values with blanks, which this pattern rejects.
    CONSTRAINT payment_transactions_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT payment_transactions_status_check
        CHECK (status IN ('pending', 'captured', 'failed', 'refunded')),
    CONSTRAINT payment_transactions_webhook_payload_check
        CHECK (webhook_payload IS NULL OR jsonb_typeof(webhook_payload) = 'object'),
    -- A provider never reuses its ids; catching a clash here stops one provider payment
    -- from being credited to two transactions. NULLs (not yet known) do not clash.
    CONSTRAINT payment_transactions_provider_order_key
        UNIQUE (provider, provider_order_id),
    CONSTRAINT payment_transactions_provider_payment_key
        UNIQUE (provider, provider_payment_id)
);

-- A user's payment history, newest first (data export, support).
CREATE INDEX payment_transactions_user_created_idx
    ON payment_transactions (user_id, created_at DESC);

-- Webhooks are delivered at least once, so each (transaction, event) pair is applied once:
-- the handler inserts here first, in the same transaction as its effects, with
-- ON CONFLICT ON CONSTRAINT payment_webhook_events_transaction_event_key DO NOTHING;
-- no row back means a replay, answered as a duplicate with nothing changed.
CREATE TABLE payment_webhook_events (
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- The events mean nothing without their transaction.
    transaction_id uuid        NOT NULL
        REFERENCES payment_transactions (id) ON DELETE CASCADE,
    event          text        NOT NULL,
    payload        jsonb       NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_webhook_events_pkey PRIMARY KEY (id),
    -- A new provider event needs handling code anyway; it comes with a migration.
    CONSTRAINT payment_webhook_events_event_check
        CHECK (event IN ('payment.captured', 'payment.failed')),
    CONSTRAINT payment_webhook_events_payload_check
        CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT payment_webhook_events_transaction_event_key
        UNIQUE (transaction_id, event)
);
