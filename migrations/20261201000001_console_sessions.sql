-- Sessions of the web console (/ui/): a login verified with TokenReview, kept server-side so
-- every replica knows it and logout or expiry ends it everywhere. The cookie holds a random
-- id; only its SHA-256 is stored, so a copy of this table logs nobody in.
CREATE TABLE console_sessions (
    id_sha256  bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    username   text NOT NULL CHECK (username <> ''),
    groups     text[] NOT NULL DEFAULT '{}',
    -- Every form of the session carries this token; a POST without it is refused.
    csrf_token text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- One-time login links (`kubectl shepherd ui`): a code the plugin obtained with the user's
-- kubeconfig token opens one console session, once, within a minute. Stored by SHA-256.
CREATE TABLE console_login_codes (
    code_sha256 bytea PRIMARY KEY CHECK (length(code_sha256) = 32),
    username    text NOT NULL CHECK (username <> ''),
    groups      text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
