-- A permission renamed (or removed) changes what every role that holds it allows, so it is
-- announced like the other reference data: '*' on manas360_user, once per statement, and
-- front ends drop every cached decision. The function learns the table; nothing else moves.

CREATE OR REPLACE FUNCTION announce_account_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    row_user uuid;
BEGIN
    IF TG_TABLE_NAME IN ('subscription_plans', 'roles', 'role_permissions', 'plan_features',
                         'features', 'permissions') THEN
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

CREATE TRIGGER permissions_announce
    AFTER UPDATE OR DELETE ON permissions
    FOR EACH STATEMENT EXECUTE FUNCTION announce_account_change();
