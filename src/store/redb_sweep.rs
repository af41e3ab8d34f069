//! The redb store's sweep: everything expired is deleted in one write transaction, so a
//! crash mid-sweep leaves the store as it was.

use ::redb::{
    ReadableMultimapTable, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::redb::{
    dec, dec_access, enc, revoke_grant_in, ACCESS, CLAIMS, CLIENTS, CODES, GRANTS, GRANT_TOKENS,
    REFRESH, USED_CODES,
};
use super::{ClientRecord, CodeRecord, GrantRecord, RefreshRecord, StoreError, Swept};

/// A token record's grant and expiry, decoded from its stored form.
type Expiry = dyn Fn(&[u8]) -> Option<(String, u64)>;

/// How long a redeemed code is remembered after its expiry, to detect late replays.
const USED_CODE_GRACE: u64 = 24 * 3600;

pub(super) fn sweep_in(
    txn: &WriteTransaction,
    now: u64,
    unused_clients_before: u64,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    {
        let mut clients = txn.open_table(CLIENTS)?;
        let before = clients.len()?;
        clients.retain(|_, v| {
            dec::<ClientRecord>(v).map_or(true, |c| {
                c.first_used_at.is_some() || c.created_at >= unused_clients_before
            })
        })?;
        swept.clients = (before - clients.len()?) as usize;
    }
    {
        let mut codes = txn.open_table(CODES)?;
        let before = codes.len()?;
        codes.retain(|_, v| dec::<CodeRecord>(v).map_or(true, |c| c.expires_at > now))?;
        swept.codes = (before - codes.len()?) as usize;
        let mut used = txn.open_table(USED_CODES)?;
        used.retain(|_, (_, expires_at)| expires_at + USED_CODE_GRACE > now)?;
        let mut claims = txn.open_table(CLAIMS)?;
        claims.retain(|_, until| until > now)?;
    }
    // (token hash, grant) of the expired records of `table`, each decoded by `expiry`.
    let expired = |table: TableDefinition<&[u8; 32], &[u8]>,
                   expiry: &Expiry|
     -> Result<Vec<([u8; 32], String)>, StoreError> {
        let t = txn.open_table(table)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if let Some((grant, expires_at)) = expiry(v.value()) {
                if expires_at <= now {
                    out.push((*k.value(), grant));
                }
            }
        }
        Ok(out)
    };
    let expired_access = expired(ACCESS, &|v| {
        let rec = dec_access(v).ok()?;
        Some((rec.grant_id.to_string(), rec.expires_at))
    })?;
    let expired_refresh = expired(REFRESH, &|v| {
        let rec: RefreshRecord = dec(v).ok()?;
        Some((rec.grant_id.to_string(), rec.expires_at))
    })?;
    {
        let mut access = txn.open_table(ACCESS)?;
        let mut refresh = txn.open_table(REFRESH)?;
        let mut links = txn.open_multimap_table(GRANT_TOKENS)?;
        for (h, grant) in &expired_access {
            access.remove(h)?;
            links.remove(grant.as_str(), h)?;
        }
        for (h, grant) in &expired_refresh {
            refresh.remove(h)?;
            links.remove(grant.as_str(), h)?;
        }
        swept.access_tokens = expired_access.len();
        swept.refresh_tokens = expired_refresh.len();
    }
    // Sealed retry answers leave with their grace window.
    {
        let mut refresh = txn.open_table(REFRESH)?;
        let mut stale = Vec::new();
        for row in refresh.iter()? {
            let (k, v) = row?;
            if let Ok(rec) = dec::<RefreshRecord>(v.value()) {
                if rec.successor.as_ref().is_some_and(|s| s.until < now) {
                    stale.push((*k.value(), rec));
                }
            }
        }
        for (k, rec) in stale {
            let cleared = RefreshRecord {
                successor: None,
                ..rec
            };
            refresh.insert(&k, enc(&cleared).as_slice())?;
        }
    }
    // A grant that lost its last refresh token can never issue again; one that never
    // had any (a client without the refresh grant) ends with its last access token.
    let mut touched: Vec<String> = expired_access
        .into_iter()
        .chain(expired_refresh)
        .map(|(_, g)| g)
        .collect();
    touched.sort();
    touched.dedup();
    for grant in touched {
        let (any_refresh, any_access) = {
            let links = txn.open_multimap_table(GRANT_TOKENS)?;
            let refresh = txn.open_table(REFRESH)?;
            let access = txn.open_table(ACCESS)?;
            let (mut r, mut a) = (false, false);
            for h in links.get(grant.as_str())? {
                let h = h?;
                r |= refresh.get(h.value())?.is_some();
                a |= access.get(h.value())?.is_some();
            }
            (r, a)
        };
        let had_refresh = {
            let grants = txn.open_table(GRANTS)?;
            let found = grants.get(grant.as_str())?;
            match found {
                Some(raw) => dec::<GrantRecord>(raw.value())?.refresh,
                None => continue,
            }
        };
        if !any_refresh && (had_refresh || !any_access) {
            revoke_grant_in(txn, &grant)?;
            swept.grants += 1;
        }
    }
    Ok(swept)
}
