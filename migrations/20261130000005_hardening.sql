-- Closing authorization holes (docs/architecture.md#identity-and-permissions).
--  * identity_stamps: every nonce the mutating webhook signed into an identity stamp. The
--    first object uid that presents it claims it; a stamp copied onto another object, even
--    one recreated under the same name, finds its nonce claimed and is refused.
--  * object_deletions: who asked the API server to delete a Shepherd object, recorded by
--    the validating webhook; the reconciler's clean-up names that person in the audit row.
--  * catalog_changes: who created or changed the spec of a catalog object (Cluster,
--    VmNamespace, InstanceSize, VmTemplate), recorded by the validating webhook with a hash
--    of the spec; the reconciler audits the change in that person's name.
CREATE TABLE identity_stamps (
    nonce      text PRIMARY KEY CHECK (nonce ~ '^[0-9a-f]{32}$'),
    kind       text NOT NULL,
    namespace  text NOT NULL DEFAULT '',
    name       text NOT NULL,
    username   text NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    object_uid text UNIQUE,
    claimed_at timestamptz,
    CHECK ((object_uid IS NULL) = (claimed_at IS NULL))
);

CREATE TABLE object_deletions (
    object_uid   text PRIMARY KEY,
    kind         text NOT NULL,
    namespace    text NOT NULL DEFAULT '',
    name         text NOT NULL,
    deleted_by   text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE catalog_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    name        text NOT NULL,
    spec_sha256 text NOT NULL CHECK (spec_sha256 ~ '^[0-9a-f]{64}$'),
    changed_by  text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX catalog_changes_by_spec ON catalog_changes (kind, name, spec_sha256, id DESC);
