-- The governance schema (DESIGN §2-8). River's own tables come from River's migrator.
--
-- Conventions:
--  * Soft deletion: `status` plus `deleted_at`, kept consistent by a CHECK; unique indexes
--    ignore deleted rows so a name can be used again after its owner is deleted.
--  * Environments are 'test' or 'prod' (DESIGN §6) and live on namespaces and clusters only.
--  * Kubernetes objects that mirror a row carry their uid in `k8s_uid`.
--  * No credentials are stored anywhere: clusters reference a Kubernetes Secret by name.

CREATE FUNCTION shepherd_valid_environment(env text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT env IN ('test', 'prod') $$;

-- Rejects every UPDATE and DELETE: for rows that are facts, not state.
CREATE FUNCTION shepherd_reject_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- Subjects: the Kubernetes users, groups and service accounts the platform has seen.
CREATE TABLE subjects (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind          text NOT NULL CHECK (kind IN ('User', 'Group', 'ServiceAccount')),
    name          text NOT NULL CHECK (name <> ''),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, name)
);

CREATE TABLE systems (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    k8s_uid     text,
    status      text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Deleted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CHECK ((status = 'Deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX systems_name_live ON systems (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX systems_k8s_uid ON systems (k8s_uid) WHERE k8s_uid IS NOT NULL;

CREATE TABLE services (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    system_id           uuid NOT NULL REFERENCES systems (id),
    name                text NOT NULL,
    description         text NOT NULL DEFAULT '',
    created_by          text NOT NULL,
    -- The next VM instance index; it only grows, so an index is never handed out twice.
    next_instance_index integer NOT NULL DEFAULT 1 CHECK (next_instance_index >= 1),
    k8s_uid             text,
    status              text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Deleted')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CHECK ((status = 'Deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX services_name_live ON services (system_id, name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX services_k8s_uid ON services (k8s_uid) WHERE k8s_uid IS NOT NULL;
CREATE FUNCTION shepherd_instance_index_only_grows() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_instance_index < OLD.next_instance_index THEN
        RAISE EXCEPTION 'services.next_instance_index only grows (% -> %)',
            OLD.next_instance_index, NEW.next_instance_index
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER services_instance_index_only_grows BEFORE UPDATE OF next_instance_index ON services
    FOR EACH ROW EXECUTE FUNCTION shepherd_instance_index_only_grows();

-- Target namespaces registered by platform admins, each with its environment.
CREATE TABLE namespaces (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    environment text NOT NULL CHECK (shepherd_valid_environment(environment)),
    description text NOT NULL DEFAULT '',
    k8s_uid     text,
    status      text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Deleted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CHECK ((status = 'Deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX namespaces_name_live ON namespaces (name) WHERE deleted_at IS NULL;

-- Target clusters. The kubeconfig stays in a Kubernetes Secret; only its reference is here.
CREATE TABLE clusters (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  text NOT NULL,
    environment           text NOT NULL CHECK (shepherd_valid_environment(environment)),
    kubeconfig_secret_ns  text NOT NULL,
    kubeconfig_secret     text NOT NULL,
    kubeconfig_secret_key text NOT NULL DEFAULT 'kubeconfig',
    scheduling_weight     integer NOT NULL DEFAULT 100 CHECK (scheduling_weight >= 0),
    max_vms               integer CHECK (max_vms IS NULL OR max_vms >= 0),
    enabled               boolean NOT NULL DEFAULT true,
    health                text NOT NULL DEFAULT 'Unknown' CHECK (health IN ('Unknown', 'Healthy', 'Unhealthy')),
    kubevirt_version      text,
    capabilities          jsonb NOT NULL DEFAULT '{}',
    storage_classes       text[] NOT NULL DEFAULT '{}',
    default_storage_class text,
    last_probe_at         timestamptz,
    k8s_uid               text,
    status                text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Deleted')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    CHECK ((status = 'Deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX clusters_name_live ON clusters (name) WHERE deleted_at IS NULL;

CREATE TABLE instance_sizes (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text NOT NULL,
    cpu_cores               integer NOT NULL CHECK (cpu_cores > 0),
    memory_mib              bigint NOT NULL CHECK (memory_mib > 0),
    -- Requests are limits divided by the ratio; 1 means no overcommit.
    cpu_overcommit          double precision NOT NULL DEFAULT 1 CHECK (cpu_overcommit >= 1),
    memory_overcommit       double precision NOT NULL DEFAULT 1 CHECK (memory_overcommit >= 1),
    dedicated_cpu           boolean NOT NULL DEFAULT false,
    hugepages_size          text,
    gpus                    jsonb NOT NULL DEFAULT '[]',
    disk_min_gib            integer NOT NULL DEFAULT 1 CHECK (disk_min_gib > 0),
    disk_max_gib            integer NOT NULL CHECK (disk_max_gib > 0),
    spec_overrides          jsonb NOT NULL DEFAULT '{}',
    k8s_uid                 text,
    status                  text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Deleted')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    CHECK ((status = 'Deleted') = (deleted_at IS NOT NULL)),
    CHECK (disk_min_gib <= disk_max_gib),
    -- Dedicated CPUs need request == limit, so no CPU overcommit.
    CHECK (NOT dedicated_cpu OR cpu_overcommit = 1)
);
CREATE UNIQUE INDEX instance_sizes_name_live ON instance_sizes (name) WHERE deleted_at IS NULL;

CREATE TABLE templates (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    k8s_uid     text,
    status      text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Deleted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CHECK ((status = 'Deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX templates_name_live ON templates (name) WHERE deleted_at IS NULL;

-- Every spec change of a template is a new version; versions never change.
CREATE TABLE template_versions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    template_id uuid NOT NULL REFERENCES templates (id),
    version     integer NOT NULL CHECK (version >= 1),
    spec        jsonb NOT NULL,
    spec_sha256 text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (template_id, version)
);
CREATE TRIGGER template_versions_immutable BEFORE UPDATE OR DELETE ON template_versions
    FOR EACH ROW EXECUTE FUNCTION shepherd_reject_change();

-- Which operations need approval, per environment (DESIGN §4). Seeded with defaults.
CREATE TABLE approval_policies (
    operation         text NOT NULL CHECK (operation IN
        ('create', 'delete', 'start', 'stop', 'restart', 'migrate', 'snapshot', 'restore', 'clone')),
    environment       text NOT NULL CHECK (shepherd_valid_environment(environment)),
    requires_approval boolean NOT NULL,
    updated_by        text NOT NULL DEFAULT 'seed',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operation, environment)
);

CREATE TABLE tickets (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    operation              text NOT NULL CHECK (operation IN
        ('create', 'delete', 'start', 'stop', 'restart', 'migrate', 'snapshot', 'restore', 'clone')),
    status                 text NOT NULL DEFAULT 'PendingApproval' CHECK (status IN
        ('PendingApproval', 'Approved', 'Rejected', 'Cancelled', 'Executing', 'Succeeded', 'Failed', 'PartiallySucceeded')),
    requester              text NOT NULL,
    requester_groups       text[] NOT NULL DEFAULT '{}',
    -- The uid of the VmRequest or VmOperation that asked: a re-delivered event finds its ticket.
    request_uid            text,
    service_id             uuid NOT NULL REFERENCES services (id),
    namespace_id           uuid NOT NULL REFERENCES namespaces (id),
    environment            text NOT NULL CHECK (shepherd_valid_environment(environment)),
    -- Set for day-2 operations on one VM; NULL for create.
    vm_id                  uuid,
    vm_count               integer NOT NULL DEFAULT 1 CHECK (vm_count BETWEEN 1 AND 10),
    reason                 text NOT NULL DEFAULT '',
    request                jsonb NOT NULL DEFAULT '{}',
    -- Decision.
    approver               text,
    decision_reason        text,
    decided_at             timestamptz,
    overrides              jsonb,
    -- What approval fixed: snapshots and final resources.
    cluster_id             uuid REFERENCES clusters (id),
    template_version_id    uuid REFERENCES template_versions (id),
    template_snapshot      jsonb,
    instance_size_snapshot jsonb,
    final_resources        jsonb,
    error_message          text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    -- Separation of duties, enforced here too: nobody decides their own ticket.
    CHECK (approver IS NULL OR approver <> requester)
);
CREATE UNIQUE INDEX tickets_request_uid ON tickets (request_uid) WHERE request_uid IS NOT NULL;
-- At most one pending ticket per VM and operation.
CREATE UNIQUE INDEX tickets_one_pending_per_vm_operation ON tickets (vm_id, operation)
    WHERE status = 'PendingApproval' AND vm_id IS NOT NULL;
CREATE INDEX tickets_status_created ON tickets (status, created_at);

CREATE TABLE vms (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL CHECK (length(name) <= 63),
    ticket_id           uuid NOT NULL REFERENCES tickets (id),
    service_id          uuid NOT NULL REFERENCES services (id),
    namespace_id        uuid NOT NULL REFERENCES namespaces (id),
    cluster_id          uuid REFERENCES clusters (id),
    instance_index      integer NOT NULL CHECK (instance_index >= 1),
    instance_size_id    uuid REFERENCES instance_sizes (id),
    template_version_id uuid REFERENCES template_versions (id),
    storage_class       text,
    status              text NOT NULL DEFAULT 'Creating' CHECK (status IN
        ('Creating', 'Starting', 'Running', 'Stopping', 'Stopped', 'Migrating', 'Deleting', 'Deleted', 'Failed', 'Missing')),
    -- The power state users asked for; rendering derives runStrategy from it.
    desired_power_state text NOT NULL DEFAULT 'Running' CHECK (desired_power_state IN ('Running', 'Stopped')),
    created_by          text NOT NULL,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CHECK ((status = 'Deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX vms_name_live ON vms (name) WHERE deleted_at IS NULL;
-- Instance indexes are never reused within a Service, deleted VMs included.
CREATE UNIQUE INDEX vms_service_instance_index ON vms (service_id, instance_index);
ALTER TABLE tickets ADD FOREIGN KEY (vm_id) REFERENCES vms (id);

CREATE TABLE vm_revisions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vm_id         uuid NOT NULL REFERENCES vms (id),
    revision      integer NOT NULL CHECK (revision >= 1),
    spec          jsonb NOT NULL,
    change_reason text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vm_id, revision)
);
CREATE TRIGGER vm_revisions_immutable BEFORE UPDATE OR DELETE ON vm_revisions
    FOR EACH ROW EXECUTE FUNCTION shepherd_reject_change();

-- Machine-readable state transitions. The payload is what happened and never changes;
-- only the processing status moves.
CREATE TABLE domain_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id   uuid NOT NULL,
    event_type     text NOT NULL,
    payload        jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'Pending' CHECK (status IN ('Pending', 'Processing', 'Completed', 'Failed', 'Cancelled')),
    error_message  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    archived_at    timestamptz
);
CREATE INDEX domain_events_aggregate ON domain_events (aggregate_type, aggregate_id);
CREATE FUNCTION shepherd_domain_event_payload_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload IS DISTINCT FROM OLD.payload OR NEW.event_type IS DISTINCT FROM OLD.event_type
       OR NEW.aggregate_type IS DISTINCT FROM OLD.aggregate_type OR NEW.aggregate_id IS DISTINCT FROM OLD.aggregate_id
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'domain_events % is immutable: only status, error_message and archived_at may change', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER domain_events_payload_immutable BEFORE UPDATE ON domain_events
    FOR EACH ROW EXECUTE FUNCTION shepherd_domain_event_payload_immutable();
CREATE TRIGGER domain_events_no_delete BEFORE DELETE ON domain_events
    FOR EACH ROW EXECUTE FUNCTION shepherd_reject_change();

-- RBAC (DESIGN §3). Permissions are named; there are no wildcards.
CREATE TABLE permissions (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z]+:[a-z]+$'),
    description text NOT NULL
);

CREATE TABLE roles (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]*$'),
    description text NOT NULL DEFAULT '',
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION shepherd_builtin_role_not_deletable() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.builtin THEN
        RAISE EXCEPTION 'role % is built in and cannot be deleted', OLD.name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER roles_builtin_not_deletable BEFORE DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION shepherd_builtin_role_not_deletable();

CREATE TABLE role_permissions (
    role_name     text NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    permission_id text NOT NULL REFERENCES permissions (id),
    PRIMARY KEY (role_name, permission_id)
);

CREATE TABLE role_bindings (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subject_kind         text NOT NULL CHECK (subject_kind IN ('User', 'Group', 'ServiceAccount')),
    subject_name         text NOT NULL CHECK (subject_name <> ''),
    role_name            text NOT NULL REFERENCES roles (name),
    scope_system_id      uuid REFERENCES systems (id),
    allowed_environments text[] NOT NULL DEFAULT '{test}'
        CHECK (cardinality(allowed_environments) >= 1 AND allowed_environments <@ ARRAY['test', 'prod']),
    -- Where the binding came from: 'seed', 'config' (bootstrap admins), 'api'.
    source               text NOT NULL CHECK (source IN ('seed', 'config', 'api')),
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
-- One binding per subject, role and scope (NULL scope = global).
CREATE UNIQUE INDEX role_bindings_unique ON role_bindings
    (subject_kind, subject_name, role_name, COALESCE(scope_system_id, '00000000-0000-0000-0000-000000000000'::uuid));

-- Resource roles on a System, inherited by its Services and VMs.
CREATE TABLE system_resource_bindings (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    system_id    uuid NOT NULL REFERENCES systems (id),
    subject_kind text NOT NULL CHECK (subject_kind IN ('User', 'Group', 'ServiceAccount')),
    subject_name text NOT NULL CHECK (subject_name <> ''),
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    granted_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (system_id, subject_kind, subject_name)
);

-- The audit log: append-only, hash-chained (DESIGN §8). Each row's hash covers the previous
-- row's hash and the row's canonical encoding, computed by the application on append.
CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at   timestamptz NOT NULL,
    action        text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    actor         text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    resource_name text NOT NULL DEFAULT '',
    parent_type   text,
    parent_id     text,
    environment   text CHECK (environment IS NULL OR shepherd_valid_environment(environment)),
    details       jsonb NOT NULL DEFAULT '{}',
    prev_hash     text NOT NULL,
    hash          text NOT NULL UNIQUE
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_id, id);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION shepherd_reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION shepherd_reject_change();

-- The head of the chain, so removing the newest rows is detectable too.
CREATE TABLE audit_chain_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id    bigint NOT NULL,
    last_hash  text NOT NULL,
    row_count  bigint NOT NULL
);
INSERT INTO audit_chain_head (singleton, last_id, last_hash, row_count)
VALUES (true, 0, repeat('0', 64), 0);
