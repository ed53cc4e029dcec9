-- Every change that can alter what the server has cached about an account is announced on
-- the channel manas360_user, with the account's id as payload, or '*' when it may touch
-- every account (a plan or role renamed). Front ends LISTEN and drop what they hold.
-- Triggers rather than statements in the code: a change made by any path, a migration or
-- an operator's psql session included, is announced, and none can be forgotten.
-- NOTIFY is delivered only after commit, and once per distinct payload per transaction, so
-- a batch update costs one notification per account.

CREATE FUNCTION announce_account_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    row_user uuid;
BEGIN
    IF TG_TABLE_NAME IN ('subscription_plans', 'roles', 'role_permissions', 'plan_features',
                         'features') THEN
        PERFORM pg_notify('manas360_user', '*');
        RETURN NULL;
    END IF;

    IF TG_TABLE_NAME = 'user_accounts' THEN
        row_user := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    ELSE
        row_user := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
    END IF;
    PERFORM pg_notify('manas360_user', row_user::text);

    -- Nested, not joined with AND: PL/pgSQL may evaluate every operand, and OLD of
    -- user_accounts has no user_id.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'user_subscriptions' THEN
        IF OLD.user_id IS DISTINCT FROM NEW.user_id THEN
            PERFORM pg_notify('manas360_user', OLD.user_id::text);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER user_accounts_announce
    AFTER UPDATE OR DELETE ON user_accounts
    FOR EACH ROW EXECUTE FUNCTION announce_account_change();
CREATE TRIGGER user_subscriptions_announce
    AFTER INSERT OR UPDATE OR DELETE ON user_subscriptions
    FOR EACH ROW EXECUTE FUNCTION announce_account_change();

-- Reference data changes rarely; one statement-level announcement is enough.
CREATE TRIGGER subscription_plans_announce
    AFTER UPDATE OR DELETE ON subscription_plans
    FOR EACH STATEMENT EXECUTE FUNCTION announce_account_change();
CREATE TRIGGER roles_announce
    AFTER UPDATE OR DELETE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION announce_account_change();
CREATE TRIGGER role_permissions_announce
    AFTER INSERT OR UPDATE OR DELETE ON role_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION announce_account_change();
CREATE TRIGGER plan_features_announce
    AFTER INSERT OR UPDATE OR DELETE ON plan_features
    FOR EACH STATEMENT EXECUTE FUNCTION announce_account_change();
CREATE TRIGGER features_announce
    AFTER UPDATE OR DELETE ON features
    FOR EACH STATEMENT EXECUTE FUNCTION announce_account_change();
