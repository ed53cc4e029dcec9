-- Wakes the notifier as soon as a message is queued. Every insert into email_outbox is
-- announced on the channel manas360_outbox (empty payload); notifier processes LISTEN and
-- claim due rows at once instead of waiting for their next poll. NOTIFY is delivered after
-- commit only, so a woken notifier always finds the row, and once per transaction, so a
-- batch of messages costs one wake-up. The poll stays: a notifier that was disconnected
-- hears nothing of what was queued meanwhile.

CREATE FUNCTION announce_outbox_insert() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('manas360_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER email_outbox_announce
    AFTER INSERT ON email_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION announce_outbox_insert();
