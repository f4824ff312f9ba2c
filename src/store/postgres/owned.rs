//! Owned ranges (docs/contract.md §1) in PostgreSQL.

use super::PgStore;
use crate::store::{Fence, OwnedRange, StoreError};
use sqlx::{PgConnection, Row};

impl PgStore {
    pub(crate) async fn owned_ranges(&self, org_id: &str) -> Result<Vec<OwnedRange>, StoreError> {
        self.check_open()?;
        let rows = sqlx::query(
            "SELECT profile, start_address, end_address FROM owned_ranges WHERE org_id = $1 \
             ORDER BY profile, start_address, end_address",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OwnedRange {
                    profile: row.try_get("profile")?,
                    start: row.try_get("start_address")?,
                    end: row.try_get("end_address")?,
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
        self.fenced(fence, async |tx: &mut PgConnection| {
            for profile in replace_profiles {
                sqlx::query("DELETE FROM owned_ranges WHERE org_id = $1 AND profile = $2")
                    .bind(&fence.org_id)
                    .bind(profile)
                    .execute(&mut *tx)
                    .await?;
            }
            for range in ranges {
                sqlx::query(
                    "INSERT INTO owned_ranges (org_id, profile, start_address, end_address) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
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
