//! Per-org leases, and what a tenure writes besides runs: the legacy key's history it adopts
//! and the ranges ipguard owns (docs/contract.md §1 Owned ranges, §10).

use std::time::Duration;

use super::super::dialect::{Arg, Dialect, Row, query, sql};
use super::super::{Fence, Lease, LeaseState, OwnedRange, StoreError};
use super::Core;

impl<D: Dialect> Core<D> {
    pub(crate) async fn try_acquire_lease(
        &self,
        org_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.check_open()?;
        // SET expressions see the row as it was, so the token is judged on the old holder.
        // PostgreSQL locks the conflicting row and re-checks the WHERE, and SQLite has one
        // writer, so racing instances cannot both win.
        let written = async {
            let mut conn = self.db.writer().await?;
            query(sql!(
                "INSERT INTO leases (org_id, holder, fencing_token, expires_at) \
                 VALUES ($1, $2, 1, " now_plus(3) ") \
                 ON CONFLICT (org_id) DO UPDATE SET \
                   fencing_token = CASE WHEN leases.holder = excluded.holder \
                                         AND leases.expires_at > " now " \
                                   THEN leases.fencing_token \
                                   ELSE leases.fencing_token + 1 END, \
                   holder = excluded.holder, \
                   expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= " now " \
                 RETURNING org_id, holder, fencing_token, expires_at"
            ))
            .bind(org_id)
            .bind(holder)
            .bind(Arg::secs(ttl))
            .fetch_all(&mut *conn)
            .await
        }
        .await;
        let rows = self.observe(written)?;
        rows.first().map(lease).transpose()
    }

    pub(crate) async fn lease(&self, org_id: &str) -> Result<Option<LeaseState>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let row = query(sql!(
            "SELECT org_id, holder, fencing_token, expires_at, " now " AS store_now \
             FROM leases WHERE org_id = $1"
        ))
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            let lease = lease(&row)?;
            let expires_in = (lease.expires_at - row.stamp("store_now")?)
                .to_std()
                .unwrap_or_default();
            Ok(LeaseState { lease, expires_in })
        })
        .transpose()
    }

    pub(crate) async fn release_lease(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        self.check_open()?;
        let written = async {
            let mut conn = self.db.writer().await?;
            query(sql!(
                "UPDATE leases SET expires_at = " now " \
                 WHERE org_id = $1 AND holder = $2 AND expires_at > " now
            ))
            .bind(org_id)
            .bind(holder)
            .execute(&mut *conn)
            .await
        }
        .await;
        self.observe(written)?;
        Ok(())
    }

    /// How many instances announced themselves ([`super::super::presence_key`]) and have not
    /// expired.
    pub(crate) async fn live_instances(&self) -> Result<u64, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let row = query(sql!(
            "SELECT COUNT(*) AS live FROM leases \
             WHERE org_id LIKE 'instance:%' AND expires_at > " now
        ))
        .fetch_one(&mut *conn)
        .await?;
        Ok(u64::try_from(row.int("live")?).unwrap_or_default())
    }

    pub(crate) async fn adopt_legacy_key(
        &self,
        fence: &Fence,
        legacy_key: &str,
    ) -> Result<u64, StoreError> {
        self.check_open()?;
        self.fenced(fence, async |tx| {
            let held = query(sql!(
                "SELECT 1 AS held FROM leases WHERE org_id = $1 AND expires_at > " now
            ))
            .bind(legacy_key)
            .fetch_optional(&mut *tx)
            .await?;
            if held.is_some() {
                return Ok(0);
            }
            let runs = query(sql!("UPDATE runs SET org_id = $1 WHERE org_id = $2"))
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            query(sql!("UPDATE hints SET org_id = $1 WHERE org_id = $2"))
                .bind(&fence.org_id)
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            query(sql!(
                "UPDATE owned_ranges SET org_id = $1 WHERE org_id = $2"
            ))
            .bind(&fence.org_id)
            .bind(legacy_key)
            .execute(&mut *tx)
            .await?;
            query(sql!("DELETE FROM org_status WHERE org_id = $1"))
                .bind(legacy_key)
                .execute(&mut *tx)
                .await?;
            Ok(runs)
        })
        .await
    }

    pub(crate) async fn owned_ranges(&self, org_id: &str) -> Result<Vec<OwnedRange>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let rows = query(sql!(
            "SELECT profile, start_address, end_address FROM owned_ranges WHERE org_id = $1 \
             ORDER BY profile, start_address, end_address"
        ))
        .bind(org_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OwnedRange {
                    profile: row.text("profile")?,
                    start: row.text("start_address")?,
                    end: row.text("end_address")?,
                })
            })
            .collect()
    }

    pub(crate) async fn record_owned_ranges(
        &self,
        fence: &Fence,
        replace_profiles: &[String],
        ranges: &[OwnedRange],
    ) -> Result<(), StoreError> {
        self.check_open()?;
        self.fenced(fence, async |tx| {
            for profile in replace_profiles {
                query(sql!(
                    "DELETE FROM owned_ranges WHERE org_id = $1 AND profile = $2"
                ))
                .bind(&fence.org_id)
                .bind(profile)
                .execute(&mut *tx)
                .await?;
            }
            for range in ranges {
                query(sql!(
                    "INSERT INTO owned_ranges \
                       (org_id, profile, start_address, end_address, recorded_at) \
                     VALUES ($1, $2, $3, $4, " now ") ON CONFLICT DO NOTHING"
                ))
                .bind(&fence.org_id)
                .bind(&range.profile)
                .bind(&range.start)
                .bind(&range.end)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
        .await
    }
}

fn lease(row: &impl Row) -> Result<Lease, StoreError> {
    Ok(Lease {
        org_id: row.text("org_id")?,
        holder: row.text("holder")?,
        fencing_token: row.int("fencing_token")?,
        expires_at: row.stamp("expires_at")?,
    })
}
