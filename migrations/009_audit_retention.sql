-- Drops the monthly partitions of audit_logs that hold only rows older than `keep_days`,
-- and deletes such rows from the default partition; returns how many partitions went.
-- A partition is dropped whole once its month ended keep_days ago, so rows are kept for at
-- least keep_days and at most a month longer. The audit writer calls this on a timer.
-- Partitions are found by the name audit_logs_ensure_partition gives them.
CREATE FUNCTION audit_logs_drop_expired(keep_days integer) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    cutoff  timestamptz := now() - make_interval(days => keep_days);
    dropped integer := 0;
    part    record;
BEGIN
    IF keep_days < 90 THEN
        RAISE EXCEPTION 'audit_logs_drop_expired: keep_days must be at least 90'
            USING ERRCODE = '22023';
    END IF;

    FOR part IN
        SELECT c.oid::regclass AS name,
               to_date(substr(c.relname, 13, 4) || substr(c.relname, 18, 2), 'YYYYMM') AS month
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_logs'::regclass
           AND c.relname ~ '^audit_logs_y[0-9]{4}m[0-9]{2}$'
    LOOP
        IF (part.month + interval '1 month') AT TIME ZONE 'UTC' <= cutoff THEN
            EXECUTE format('ALTER TABLE audit_logs DETACH PARTITION %s', part.name);
            EXECUTE format('DROP TABLE %s', part.name);
            dropped := dropped + 1;
        END IF;
    END LOOP;

    DELETE FROM audit_logs_default WHERE created_at < cutoff;
    RETURN dropped;
END;
$$;
