-- Quota leases. A front-end process serves a user's metered requests from a block of units
-- it leased here; this function is the only writer of quota_usage, so the plan's limit holds
-- however many processes lease at once: the row is locked, and a grant never takes used +
-- leased past the limit the caller names.
--
-- One call both settles and leases: `consumed` units of the caller's block were served (they
-- move from leased to used), `returned` units go back unused, then up to `wanted` new units
-- are granted. Returns the grant and the row as it now stands.
CREATE FUNCTION quota_lease(p_user_id uuid, p_period_start date, p_consumed bigint,
                            p_returned bigint, p_wanted bigint, p_limit bigint,
                            OUT granted bigint, OUT used bigint, OUT leased bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_consumed < 0 OR p_returned < 0 OR p_wanted < 0 OR p_limit < 0 THEN
        RAISE EXCEPTION 'quota_lease: negative count' USING ERRCODE = '22023';
    END IF;

    -- A deleted account has nothing left to count, and its row would break the foreign key.
    IF NOT EXISTS (SELECT 1 FROM user_accounts a WHERE a.id = p_user_id) THEN
        granted := 0;
        used := 0;
        leased := 0;
        RETURN;
    END IF;

    INSERT INTO quota_usage (user_id, period_start) VALUES (p_user_id, p_period_start)
        ON CONFLICT (user_id, period_start) DO NOTHING;
    SELECT q.used, q.leased INTO used, leased
      FROM quota_usage q
     WHERE q.user_id = p_user_id AND q.period_start = p_period_start
       FOR UPDATE;

    used := used + p_consumed;
    -- A process never settles more than it leased; greatest() only guards the constraint.
    leased := greatest(0, leased - p_consumed - p_returned);
    granted := least(p_wanted, greatest(0, p_limit - used - leased));
    leased := leased + granted;

    UPDATE quota_usage q
       SET used = quota_lease.used, leased = quota_lease.leased, updated_at = now()
     WHERE q.user_id = p_user_id AND q.period_start = p_period_start;
END;
$$;

-- A new plan can become the recommended upgrade for everyone: announce its creation too.
DROP TRIGGER subscription_plans_announce ON subscription_plans;
CREATE TRIGGER subscription_plans_announce
    AFTER INSERT OR UPDATE OR DELETE ON subscription_plans
    FOR EACH STATEMENT EXECUTE FUNCTION announce_account_change();
