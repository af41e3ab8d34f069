//! The token lifecycle inside write transactions: issuing, rotating and revoking, each
//! atomic with the links that let a grant's revocation find all its tokens.

use ::redb::{ReadableTable, WriteTransaction};

use super::redb::{dec, enc};
use super::redb_schema::*;
use super::*;

/// Deletes a grant and all its tokens inside `txn`; returns the access-token hashes removed.
pub(super) fn revoke_grant_in(
    txn: &WriteTransaction,
    grant_id: &str,
) -> Result<Vec<SecretHash>, StoreError> {
    let mut grants = txn.open_table(GRANTS)?;
    let mut access = txn.open_table(ACCESS)?;
    let mut refresh = txn.open_table(REFRESH)?;
    let mut links = txn.open_multimap_table(GRANT_TOKENS)?;
    grants.remove(grant_id)?;
    let mut removed = Vec::new();
    let hashes: Vec<[u8; 32]> = links
        .remove_all(grant_id)?
        .map(|h| h.map(|h| *h.value()).map_err(StoreError::from))
        .collect::<Result<_, _>>()?;
    for h in hashes {
        if access.remove(&h)?.is_some() {
            removed.push(SecretHash(h));
        }
        refresh.remove(&h)?;
    }
    Ok(removed)
}

pub(super) fn insert_tokens(
    txn: &WriteTransaction,
    grant: &GrantRecord,
    t: &NewTokens,
) -> Result<(), StoreError> {
    let mut access = txn.open_table(ACCESS)?;
    let mut refresh = txn.open_table(REFRESH)?;
    let mut links = txn.open_multimap_table(GRANT_TOKENS)?;
    let a = AccessRecord::of(grant, t.access_expires_at);
    access.insert(&t.access.0, enc_access(&a).as_slice())?;
    links.insert(grant.grant_id.as_str(), &t.access.0)?;
    if let Some(hash) = &t.refresh {
        let r = RefreshRecord {
            grant_id: grant.grant_id.clone(),
            expires_at: t.refresh_expires_at,
            rotated_at: None,
            successor: None,
        };
        refresh.insert(&hash.0, enc(&r).as_slice())?;
        links.insert(grant.grant_id.as_str(), &hash.0)?;
    }
    Ok(())
}

/// Rotates refresh token `old` (see `Store::rotate_refresh`) inside `txn`.
pub(super) fn rotate_in(
    txn: &WriteTransaction,
    old: SecretHash,
    client_id: &ClientId,
    tokens: NewTokens,
    now: u64,
) -> Result<Rotation, StoreError> {
    let record: RefreshRecord = {
        let refresh = txn.open_table(REFRESH)?;
        let Some(raw) = refresh.get(&old.0)? else {
            return Ok(Rotation::Invalid);
        };
        dec(raw.value())?
    };
    let grant: Option<GrantRecord> = {
        let grants = txn.open_table(GRANTS)?;
        let found = grants.get(record.grant_id.as_str())?;
        match found {
            Some(raw) => Some(dec(raw.value())?),
            None => None,
        }
    };
    if record.rotated_at.is_some() {
        if let (Some(successor), Some(grant)) = (&record.successor, &grant) {
            if successor.until >= now {
                if grant.terms.client_id != *client_id {
                    return Ok(Rotation::Invalid);
                }
                return Ok(Rotation::Retried {
                    sealed: successor.sealed.clone(),
                });
            }
        }
        let revoked = revoke_grant_in(txn, record.grant_id.as_str())?;
        return Ok(Rotation::Reused {
            grant_id: record.grant_id,
            revoked,
        });
    }
    if record.expires_at <= now {
        return Ok(Rotation::Invalid);
    }
    let Some(grant) = grant else {
        return Ok(Rotation::Invalid);
    };
    if grant.terms.client_id != *client_id {
        return Ok(Rotation::Invalid);
    }
    {
        let mut refresh = txn.open_table(REFRESH)?;
        let rotated = RefreshRecord {
            rotated_at: Some(now),
            successor: tokens.successor.clone(),
            ..record
        };
        refresh.insert(&old.0, enc(&rotated).as_slice())?;
    }
    insert_tokens(txn, &grant, &tokens)?;
    Ok(Rotation::Rotated(Box::new(grant)))
}
