-- Bearer tokens of the HTTP API. Only a SHA-256 of each token is kept: a token is 32 random
-- bytes, so a fast hash is enough (nothing to brute-force), and lookup stays one index probe.
CREATE TABLE api_tokens (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_sha256    bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    name            text NOT NULL,
    role            text NOT NULL
        CHECK (role IN ('admin', 'safety_officer', 'inspector', 'scoring')),
    enterprise_id   bigint REFERENCES enterprises (id) ON DELETE CASCADE,
    regions         text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    CHECK ((role = 'safety_officer') = (enterprise_id IS NOT NULL)),
    CHECK (role <> 'inspector' OR cardinality(regions) > 0)
);
