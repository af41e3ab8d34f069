//! `authgate migrate-store`: a stopped gateway's redb store copied into an empty PostgreSQL
//! store, record for record, so an installation grows into replicas without anyone signing
//! in again. Read in one redb read transaction, written in one PostgreSQL transaction: the
//! target gets everything or nothing. The token tag key comes along (tokens issued by the
//! single process keep their tags), and so do the sealed values (same `auth.session_key`).

use ::redb::{ReadableDatabase, ReadableTable};

use super::postgres::{enc, store_error, ts, PostgresStore};
use super::redb::dec;
use super::redb_schema::*;
use super::*;

/// Everything a store holds.
#[derive(Default)]
pub struct Export {
    clients: Vec<ClientRecord>,
    codes: Vec<(SecretHash, CodeRecord)>,
    used_codes: Vec<(SecretHash, String, u64)>,
    grants: Vec<GrantRecord>,
    access: Vec<(SecretHash, AccessRecord)>,
    refresh: Vec<(SecretHash, RefreshRecord)>,
    claims: Vec<(SecretHash, u64)>,
    consents: Vec<(String, ConsentRecord)>,
    users: Vec<UserRecord>,
    blocked: Vec<(String, u64)>,
    secrets: Vec<(String, Vec<u8>)>,
    api_keys: Vec<ApiKeyRecord>,
}

/// How many records of each kind were copied.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub clients: usize,
    pub codes: usize,
    pub grants: usize,
    pub access_tokens: usize,
    pub refresh_tokens: usize,
    pub consents: usize,
    pub users: usize,
    pub blocked_users: usize,
    pub secrets: usize,
    pub api_keys: usize,
}

impl Export {
    pub fn counts(&self) -> Copied {
        Copied {
            clients: self.clients.len(),
            codes: self.codes.len(),
            grants: self.grants.len(),
            access_tokens: self.access.len(),
            refresh_tokens: self.refresh.len(),
            consents: self.consents.len(),
            users: self.users.len(),
            blocked_users: self.blocked.len(),
            secrets: self.secrets.len(),
            api_keys: self.api_keys.len(),
        }
    }
}

fn hash(k: &[u8; 32]) -> SecretHash {
    SecretHash(*k)
}

impl RedbStore {
    /// Every record, as one read transaction sees them.
    pub fn export(&self) -> Result<Export, StoreError> {
        let db = self.file_database()?;
        let txn = db.begin_read()?;
        let mut e = Export::default();
        for row in txn.open_table(CLIENTS)?.iter()? {
            e.clients.push(dec(row?.1.value())?);
        }
        for row in txn.open_table(CODES)?.iter()? {
            let (k, v) = row?;
            e.codes.push((hash(k.value()), dec(v.value())?));
        }
        for row in txn.open_table(USED_CODES)?.iter()? {
            let (k, v) = row?;
            let (grant, expires_at) = v.value();
            e.used_codes
                .push((hash(k.value()), grant.to_string(), expires_at));
        }
        for row in txn.open_table(GRANTS)?.iter()? {
            e.grants.push(dec(row?.1.value())?);
        }
        for row in txn.open_table(ACCESS)?.iter()? {
            let (k, v) = row?;
            e.access.push((hash(k.value()), dec_access(v.value())?));
        }
        for row in txn.open_table(REFRESH)?.iter()? {
            let (k, v) = row?;
            e.refresh.push((hash(k.value()), dec(v.value())?));
        }
        for row in txn.open_table(CLAIMS)?.iter()? {
            let (k, v) = row?;
            e.claims.push((hash(k.value()), v.value()));
        }
        for row in txn.open_table(CONSENTS)?.iter()? {
            let (k, v) = row?;
            e.consents.push((k.value().to_string(), dec(v.value())?));
        }
        for row in txn.open_table(USERS)?.iter()? {
            e.users.push(dec(row?.1.value())?);
        }
        for row in txn.open_table(BLOCKED)?.iter()? {
            let (k, v) = row?;
            e.blocked.push((k.value().to_string(), v.value()));
        }
        for row in txn.open_table(SECRETS)?.iter()? {
            let (k, v) = row?;
            e.secrets.push((k.value().to_string(), v.value().to_vec()));
        }
        for row in txn.open_table(API_KEYS)?.iter()? {
            e.api_keys.push(dec(row?.1.value())?);
        }
        Ok(e)
    }
}

impl PostgresStore {
    /// Writes `e` into this store, which must hold no grants, tokens, clients or people yet
    /// (its own token tag key, made when its schema was created, is replaced by the
    /// export's). One transaction.
    pub async fn import(&self, e: &Export) -> Result<Copied, StoreError> {
        let mut c = self.client().await?;
        let t = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await
            .map_err(store_error)?;
        let held = t
            .query_one(
                "SELECT (SELECT count(*) FROM clients) + (SELECT count(*) FROM grants) + \
                 (SELECT count(*) FROM access_tokens) + (SELECT count(*) FROM refresh_tokens) + \
                 (SELECT count(*) FROM codes) + (SELECT count(*) FROM users) + \
                 (SELECT count(*) FROM api_keys)",
                &[],
            )
            .await
            .map_err(store_error)?
            .get::<_, i64>(0);
        if held > 0 {
            return Err(StoreError::Backend(
                format!("the PostgreSQL store is not empty ({held} records): migrate-store only fills a new one").into(),
            ));
        }
        macro_rules! each {
            ($items:expr, $sql:expr, |$x:pat_param| $params:expr) => {{
                let stmt = t.prepare($sql).await.map_err(store_error)?;
                for $x in $items.iter() {
                    t.execute(&stmt, $params).await.map_err(store_error)?;
                }
            }};
        }
        each!(
            e.clients,
            "INSERT INTO clients (client_id, record, created_at, first_used_at) VALUES ($1, $2, $3, $4)",
            |c| &[&c.client_id.as_str(), &enc(c), &ts(c.created_at), &c.first_used_at.map(ts)]
        );
        each!(
            e.codes,
            "INSERT INTO codes (hash, record, expires_at) VALUES ($1, $2, $3)",
            |(h, r)| &[&&h.0[..], &enc(r), &ts(r.expires_at)]
        );
        each!(
            e.used_codes,
            "INSERT INTO used_codes (hash, grant_id, expires_at) VALUES ($1, $2, $3)",
            |(h, g, at)| &[&&h.0[..], g, &ts(*at)]
        );
        each!(
            e.grants,
            "INSERT INTO grants (grant_id, client_id, record) VALUES ($1, $2, $3)",
            |g| &[&g.grant_id.as_str(), &g.terms.client_id.as_str(), &enc(g)]
        );
        each!(
            e.access,
            "INSERT INTO access_tokens (hash, grant_id, record, expires_at) VALUES ($1, $2, $3, $4)",
            |(h, r)| &[&&h.0[..], &r.grant_id.as_str(), &enc(r), &ts(r.expires_at)]
        );
        each!(
            e.refresh,
            "INSERT INTO refresh_tokens (hash, grant_id, record, expires_at, successor_until) \
             VALUES ($1, $2, $3, $4, $5)",
            |(h, r)| &[
                &&h.0[..],
                &r.grant_id.as_str(),
                &enc(r),
                &ts(r.expires_at),
                &r.successor.as_ref().map(|s| ts(s.until))
            ]
        );
        each!(
            e.claims,
            "INSERT INTO claims (hash, expires_at) VALUES ($1, $2)",
            |(h, at)| &[&&h.0[..], &ts(*at)]
        );
        each!(
            e.consents,
            "INSERT INTO consents (consent_key, record) VALUES ($1, $2)",
            |(k, r)| &[k, &enc(r)]
        );
        each!(
            e.users,
            "INSERT INTO users (user_id, record) VALUES ($1, $2)",
            |u| &[&u.user_id, &enc(u)]
        );
        each!(
            e.blocked,
            "INSERT INTO blocked_users (user_id, since) VALUES ($1, $2)",
            |(u, at)| &[u, &ts(*at)]
        );
        each!(
            e.secrets,
            "INSERT INTO secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            |(n, v)| &[n, v]
        );
        each!(
            e.api_keys,
            "INSERT INTO api_keys (name, record) VALUES ($1, $2)",
            |k| &[&k.name, &enc(k)]
        );
        t.commit().await.map_err(store_error)?;
        Ok(e.counts())
    }
}
