-- Drift scans (docs/architecture.md#vms): what the last scan of each cluster found.
--  * scan_suspect: why nothing was marked missing (more than half of the cluster's VMs
--    looked missing at once), or NULL.
--  * orphan_count, drifted_count: VirtualMachines with our label nobody recorded, and
--    recorded ones whose spec another field manager changed.
--  * vms.drifted_by: those other field managers, at the last scan.
--  * orphan_vms: the orphans themselves, for `kubectl shepherd orphans`.
ALTER TABLE clusters
    ADD COLUMN scan_suspect  text,
    ADD COLUMN orphan_count  integer NOT NULL DEFAULT 0,
    ADD COLUMN drifted_count integer NOT NULL DEFAULT 0,
    ADD COLUMN last_scan_at  timestamptz;

ALTER TABLE vms ADD COLUMN drifted_by text[];

CREATE TABLE orphan_vms (
    cluster_id    uuid NOT NULL REFERENCES clusters (id),
    namespace     text NOT NULL,
    name          text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, namespace, name)
);

-- Retention of domain events: an event may be deleted once it is older than 7 days (the
-- shortest retention `shepherd run` accepts); younger ones stay immutable. Audit rows are
-- never deleted (their own triggers).
CREATE FUNCTION shepherd_domain_event_prune_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.created_at > now() - interval '7 days' THEN
        RAISE EXCEPTION 'domain_events % is immutable until it is 7 days old; only then may retention delete it', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;
DROP TRIGGER domain_events_no_delete ON domain_events;
CREATE TRIGGER domain_events_prune_only BEFORE DELETE ON domain_events
    FOR EACH ROW EXECUTE FUNCTION shepherd_domain_event_prune_only();
CREATE INDEX domain_events_created_at ON domain_events (created_at);
