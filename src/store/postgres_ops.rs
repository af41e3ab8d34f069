//! The PostgreSQL store's transactions: each function runs inside one SERIALIZABLE
//! transaction (see `PostgresStore::tx`) and mirrors its redb counterpart step for step.

use tokio_postgres::Transaction;

use super::{dec, enc, ts, Invalidation, PostgresStore, TxError};
use crate::store::*;

type Result<T> = std::result::Result<T, TxError>;

/// How long a redeemed code is remembered after its expiry, to detect late replays.
const USED_CODE_GRACE: i64 = 24 * 3600;

fn hash_of(bytes: &[u8]) -> std::result::Result<SecretHash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(SecretHash)
        .map_err(|_| StoreError::Corrupt {
            what: "token hash",
            source: format!("{} bytes, not 32", bytes.len()).into(),
        })
}

pub(super) async fn put_client(t: &Transaction<'_>, c: &ClientRecord) -> Result<()> {
    t.execute(
        "INSERT INTO clients (client_id, record, created_at, first_used_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (client_id) DO UPDATE SET \
         record = EXCLUDED.record, created_at = EXCLUDED.created_at, \
         first_used_at = EXCLUDED.first_used_at",
        &[
            &c.client_id.as_str(),
            &enc(c),
            &ts(c.created_at),
            &c.first_used_at.map(ts),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn put_code(
    t: &Transaction<'_>,
    code: &SecretHash,
    rec: &CodeRecord,
) -> Result<()> {
    t.execute(
        "INSERT INTO codes (hash, record, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (hash) DO UPDATE SET record = EXCLUDED.record, \
         expires_at = EXCLUDED.expires_at",
        &[&&code.0[..], &enc(rec), &ts(rec.expires_at)],
    )
    .await?;
    Ok(())
}

pub(super) async fn take_code(
    t: &Transaction<'_>,
    code: &SecretHash,
    now: u64,
) -> Result<TakenCode> {
    let key = &code.0[..];
    if let Some(prev) = t
        .query_opt("SELECT grant_id FROM used_codes WHERE hash = $1", &[&key])
        .await?
    {
        return Ok(TakenCode::Replayed {
            grant_id: GrantId::new(prev.get::<_, String>(0)),
        });
    }
    let Some(row) = t
        .query_opt(
            "DELETE FROM codes WHERE hash = $1 RETURNING record",
            &[&key],
        )
        .await?
    else {
        return Ok(TakenCode::Unknown);
    };
    let record: CodeRecord = dec(row.get::<_, &str>(0))?;
    t.execute(
        "INSERT INTO used_codes (hash, grant_id, expires_at) VALUES ($1, $2, $3)",
        &[&key, &record.grant_id.as_str(), &ts(record.expires_at)],
    )
    .await?;
    if record.expires_at <= now {
        return Ok(TakenCode::Unknown);
    }
    Ok(TakenCode::Fresh(Box::new(record)))
}

pub(super) async fn issue(
    t: &Transaction<'_>,
    grant: &GrantRecord,
    tokens: &NewTokens,
) -> Result<()> {
    t.execute(
        "INSERT INTO grants (grant_id, client_id, record) VALUES ($1, $2, $3)",
        &[
            &grant.grant_id.as_str(),
            &grant.terms.client_id.as_str(),
            &enc(grant),
        ],
    )
    .await?;
    // A registration that got a grant is in use: keep it from the sweeper.
    let unused = t
        .query_opt(
            "SELECT record FROM clients WHERE client_id = $1 AND first_used_at IS NULL",
            &[&grant.terms.client_id.as_str()],
        )
        .await?;
    if let Some(row) = unused {
        let mut c: ClientRecord = dec(row.get::<_, &str>(0))?;
        c.first_used_at = Some(grant.created_at);
        put_client(t, &c).await?;
    }
    insert_tokens(t, grant, tokens).await
}

async fn insert_tokens(t: &Transaction<'_>, grant: &GrantRecord, tokens: &NewTokens) -> Result<()> {
    let access = AccessRecord::of(grant, tokens.access_expires_at);
    t.execute(
        "INSERT INTO access_tokens (hash, grant_id, record, expires_at) VALUES ($1, $2, $3, $4)",
        &[
            &&tokens.access.0[..],
            &grant.grant_id.as_str(),
            &enc(&access),
            &ts(tokens.access_expires_at),
        ],
    )
    .await?;
    if let Some(hash) = &tokens.refresh {
        let r = RefreshRecord {
            grant_id: grant.grant_id.clone(),
            expires_at: tokens.refresh_expires_at,
            rotated_at: None,
            successor: None,
        };
        t.execute(
            "INSERT INTO refresh_tokens (hash, grant_id, record, expires_at) \
             VALUES ($1, $2, $3, $4)",
            &[
                &&hash.0[..],
                &grant.grant_id.as_str(),
                &enc(&r),
                &ts(tokens.refresh_expires_at),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn grant(t: &Transaction<'_>, grant_id: &str) -> Result<Option<GrantRecord>> {
    let row = t
        .query_opt(
            "SELECT record FROM grants WHERE grant_id = $1",
            &[&grant_id],
        )
        .await?;
    Ok(row.map(|r| dec(r.get::<_, &str>(0))).transpose()?)
}

/// Rotates refresh token `old` (see `Store::rotate_refresh`).
pub(super) async fn rotate(
    store: &PostgresStore,
    t: &Transaction<'_>,
    old: &SecretHash,
    client_id: &ClientId,
    tokens: &NewTokens,
    now: u64,
) -> Result<Rotation> {
    let Some(row) = t
        .query_opt(
            "SELECT record FROM refresh_tokens WHERE hash = $1",
            &[&&old.0[..]],
        )
        .await?
    else {
        return Ok(Rotation::Invalid);
    };
    let record: RefreshRecord = dec(row.get::<_, &str>(0))?;
    let found = grant(t, record.grant_id.as_str()).await?;
    if record.rotated_at.is_some() {
        if let (Some(successor), Some(grant)) = (&record.successor, &found) {
            if successor.until >= now {
                if grant.terms.client_id != *client_id {
                    return Ok(Rotation::Invalid);
                }
                return Ok(Rotation::Retried {
                    sealed: successor.sealed.clone(),
                });
            }
        }
        let revoked = revoke_grant(store, t, record.grant_id.as_str()).await?;
        return Ok(Rotation::Reused {
            grant_id: record.grant_id,
            revoked,
        });
    }
    if record.expires_at <= now {
        return Ok(Rotation::Invalid);
    }
    let Some(grant) = found else {
        return Ok(Rotation::Invalid);
    };
    if grant.terms.client_id != *client_id {
        return Ok(Rotation::Invalid);
    }
    let rotated = RefreshRecord {
        rotated_at: Some(now),
        successor: tokens.successor.clone(),
        ..record
    };
    t.execute(
        "UPDATE refresh_tokens SET record = $2, successor_until = $3 WHERE hash = $1",
        &[
            &&old.0[..],
            &enc(&rotated),
            &rotated.successor.as_ref().map(|s| ts(s.until)),
        ],
    )
    .await?;
    insert_tokens(t, &grant, tokens).await?;
    Ok(Rotation::Rotated(Box::new(grant)))
}

/// Deletes a grant and all its tokens; tells every replica which access tokens went.
pub(super) async fn revoke_grant(
    store: &PostgresStore,
    t: &Transaction<'_>,
    grant_id: &str,
) -> Result<Vec<SecretHash>> {
    t.execute("DELETE FROM grants WHERE grant_id = $1", &[&grant_id])
        .await?;
    t.execute(
        "DELETE FROM refresh_tokens WHERE grant_id = $1",
        &[&grant_id],
    )
    .await?;
    let rows = t
        .query(
            "DELETE FROM access_tokens WHERE grant_id = $1 RETURNING hash",
            &[&grant_id],
        )
        .await?;
    let removed = rows
        .iter()
        .map(|r| hash_of(r.get::<_, &[u8]>(0)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if !removed.is_empty() {
        store
            .notify(t, &Invalidation::Access(removed.clone()))
            .await?;
    }
    Ok(removed)
}

pub(super) async fn revoke_token(
    store: &PostgresStore,
    t: &Transaction<'_>,
    token: &SecretHash,
) -> Result<Vec<SecretHash>> {
    let key = &token.0[..];
    if let Some(row) = t
        .query_opt(
            "SELECT grant_id FROM refresh_tokens WHERE hash = $1",
            &[&key],
        )
        .await?
    {
        let grant_id: String = row.get(0);
        return revoke_grant(store, t, &grant_id).await;
    }
    let n = t
        .execute("DELETE FROM access_tokens WHERE hash = $1", &[&key])
        .await?;
    // Told even when this store no longer knew it: another replica may still cache it.
    store.notify(t, &Invalidation::Access(vec![*token])).await?;
    Ok(if n > 0 { vec![*token] } else { Vec::new() })
}

pub(super) async fn grant_verified(
    t: &Transaction<'_>,
    grant_id: &GrantId,
    verified_at: u64,
    credential: &Option<String>,
) -> Result<()> {
    if let Some(mut g) = grant(t, grant_id.as_str()).await? {
        g.verified_at = verified_at;
        if credential.is_some() {
            g.upstream_credential = credential.clone();
        }
        t.execute(
            "UPDATE grants SET record = $2 WHERE grant_id = $1",
            &[&grant_id.as_str(), &enc(&g)],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn sweep(
    store: &PostgresStore,
    t: &Transaction<'_>,
    now: u64,
    unused_clients_before: u64,
) -> Result<Swept> {
    let now = ts(now);
    let mut swept = Swept {
        clients: t
            .execute(
                "DELETE FROM clients WHERE first_used_at IS NULL AND created_at < $1",
                &[&ts(unused_clients_before)],
            )
            .await? as usize,
        codes: t
            .execute("DELETE FROM codes WHERE expires_at <= $1", &[&now])
            .await? as usize,
        ..Swept::default()
    };
    t.execute(
        "DELETE FROM used_codes WHERE expires_at <= $1",
        &[&(now - USED_CODE_GRACE)],
    )
    .await?;
    t.execute("DELETE FROM claims WHERE expires_at <= $1", &[&now])
        .await?;
    let access = t
        .query(
            "DELETE FROM access_tokens WHERE expires_at <= $1 RETURNING grant_id",
            &[&now],
        )
        .await?;
    let refresh = t
        .query(
            "DELETE FROM refresh_tokens WHERE expires_at <= $1 RETURNING grant_id",
            &[&now],
        )
        .await?;
    swept.access_tokens = access.len();
    swept.refresh_tokens = refresh.len();
    // Sealed retry answers leave with their grace window.
    let stale = t
        .query(
            "SELECT hash, record FROM refresh_tokens WHERE successor_until < $1",
            &[&now],
        )
        .await?;
    for row in &stale {
        let rec: RefreshRecord = dec(row.get::<_, &str>(1))?;
        let cleared = RefreshRecord {
            successor: None,
            ..rec
        };
        t.execute(
            "UPDATE refresh_tokens SET record = $2, successor_until = NULL WHERE hash = $1",
            &[&row.get::<_, &[u8]>(0), &enc(&cleared)],
        )
        .await?;
    }
    // A grant that lost its last refresh token can never issue again; one that never
    // had any (a client without the refresh grant) ends with its last access token.
    let mut touched: Vec<String> = access
        .iter()
        .chain(&refresh)
        .map(|r| r.get::<_, String>(0))
        .collect();
    touched.sort();
    touched.dedup();
    for grant_id in touched {
        let Some(g) = grant(t, &grant_id).await? else {
            continue;
        };
        let row = t
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = $1), \
                 EXISTS (SELECT 1 FROM access_tokens WHERE grant_id = $1)",
                &[&grant_id],
            )
            .await?;
        let (any_refresh, any_access): (bool, bool) = (row.get(0), row.get(1));
        if !any_refresh && (g.refresh || !any_access) {
            revoke_grant(store, t, &grant_id).await?;
            swept.grants += 1;
        }
    }
    Ok(swept)
}

pub(super) async fn record_login(t: &Transaction<'_>, identity: &Identity, at: u64) -> Result<()> {
    let id = identity.user_id();
    let before: Option<UserRecord> = t
        .query_opt("SELECT record FROM users WHERE user_id = $1", &[&id])
        .await?
        .map(|r| dec(r.get::<_, &str>(0)))
        .transpose()?;
    let rec = UserRecord::after_login(before, identity, at);
    t.execute(
        "INSERT INTO users (user_id, record) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET record = EXCLUDED.record",
        &[&id, &enc(&rec)],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_client(
    store: &PostgresStore,
    t: &Transaction<'_>,
    client_id: &ClientId,
) -> Result<Option<Vec<SecretHash>>> {
    let n = t
        .execute(
            "DELETE FROM clients WHERE client_id = $1",
            &[&client_id.as_str()],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    let grants = t
        .query(
            "SELECT grant_id FROM grants WHERE client_id = $1",
            &[&client_id.as_str()],
        )
        .await?;
    let mut revoked = Vec::new();
    for row in grants {
        let id: String = row.get(0);
        revoked.extend(revoke_grant(store, t, &id).await?);
    }
    Ok(Some(revoked))
}
