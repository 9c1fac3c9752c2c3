-- Day-2 operations carried out by the `vm_operate` worker (docs/architecture.md#day-2-operations).
--  * tickets.started_at: when an operation (or a create) began executing; the worker's
--    deadline counts from it.
--  * tickets.result: what the operation produced (snapshot name, migration target node, the
--    clone's VM) and the markers that make a retried attempt idempotent (the VMI a restart
--    replaced).
--  * vms.not_migratable: why KubeVirt says the running VMI cannot live-migrate (its
--    LiveMigratable condition), as last seen by the watcher; NULL when it can or when
--    nothing runs.
--  * vms.source_vm_id: the VM a clone was made from.
--  * vm_snapshots: every VirtualMachineSnapshot a snapshot operation made, and when it became
--    ready to use; restore takes its snapshot from here.
ALTER TABLE tickets
    ADD COLUMN started_at timestamptz,
    ADD COLUMN result     jsonb;

ALTER TABLE vms
    ADD COLUMN not_migratable text,
    ADD COLUMN source_vm_id   uuid REFERENCES vms (id);

CREATE TABLE vm_snapshots (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    vm_id      uuid NOT NULL REFERENCES vms (id),
    ticket_id  uuid NOT NULL UNIQUE REFERENCES tickets (id),
    cluster_id uuid NOT NULL REFERENCES clusters (id),
    namespace  text NOT NULL,
    name       text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(name) <= 63),
    created_at timestamptz NOT NULL DEFAULT now(),
    ready_at   timestamptz,
    UNIQUE (vm_id, name)
);
