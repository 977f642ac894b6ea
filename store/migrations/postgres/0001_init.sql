-- Times are unix milliseconds, ids are UUID strings, so that both dialects
-- read and write the same Go values.
CREATE TABLE instance (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	bootstrapped_at BIGINT NOT NULL
);

CREATE TABLE secrets (
	name TEXT PRIMARY KEY,
	value BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE organizations (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	slug TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE users (
	id TEXT PRIMARY KEY,
	email TEXT NOT NULL UNIQUE,
	username TEXT NOT NULL,
	first_name TEXT NOT NULL,
	last_name TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	super_admin BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE identities (
	id TEXT PRIMARY KEY,
	membership_id TEXT NOT NULL UNIQUE,
	org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	role TEXT NOT NULL,
	has_delete_protection BOOLEAN NOT NULL,
	is_instance_admin BOOLEAN NOT NULL,
	last_login_auth_method TEXT NOT NULL DEFAULT '',
	last_login_time BIGINT,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX identities_org ON identities (org_id, created_at);

CREATE TABLE identity_metadata (
	id TEXT PRIMARY KEY,
	identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
	position INTEGER NOT NULL,
	key TEXT NOT NULL,
	value TEXT NOT NULL
);
CREATE INDEX identity_metadata_identity ON identity_metadata (identity_id, position);

-- One row per auth method attached to an identity: the token policy every
-- method shares, and the method's own configuration as JSON.
CREATE TABLE identity_auth_methods (
	id TEXT PRIMARY KEY,
	identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
	auth_method TEXT NOT NULL,
	access_token_ttl BIGINT NOT NULL,
	access_token_max_ttl BIGINT NOT NULL,
	access_token_num_uses_limit BIGINT NOT NULL,
	access_token_period BIGINT NOT NULL,
	access_token_trusted_ips TEXT NOT NULL,
	ip_restricted BOOLEAN NOT NULL,
	config TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	UNIQUE (identity_id, auth_method)
);

-- Revoked tokens, by jti, kept until the token would have expired anyway.
CREATE TABLE revoked_tokens (
	jti TEXT PRIMARY KEY,
	identity_id TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

-- Use counters of tokens that have a use limit.
CREATE TABLE token_uses (
	jti TEXT PRIMARY KEY,
	uses BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX token_uses_expiry ON token_uses (expires_at);
