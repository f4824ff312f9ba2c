//! Run records: started with their hints, their deploy recorded before polling, their outcome
//! last (the module docs of `store`: hints and runs, fenced writes, in-flight deploys).

use super::super::dialect::{Arg, Dialect, Row, query, sql};
use super::super::{Fence, InFlightDeploy, RunId, RunRecord, StoreError};
use super::{Core, consume};
use crate::outcome::Outcome;
use crate::reconcile::plan::PlanRecord;
use crate::trigger::Triggers;

/// The columns [`run_record`] reads.
macro_rules! select_runs {
    ($($rest:tt)*) => {
        sql!(
            "SELECT id, org_id, trigger_kind, started_at, finished_at, outcome, profiles, \
                    deploy_id, error, failures, plan \
             FROM runs " $($rest)*
        )
    };
}

impl<D: Dialect> Core<D> {
    pub(crate) async fn start_run(
        &self,
        fence: &Fence,
        trigger: &Triggers,
        hint_ids: &[i64],
        profiles: &[String],
    ) -> Result<RunId, StoreError> {
        self.check_open()?;
        let profiles = Arg::json(profiles)?;
        let trigger = trigger.to_string();
        self.fenced(fence, async |tx| {
            let id = query(sql!(
                "INSERT INTO runs (org_id, trigger_kind, started_at, profiles) \
                 VALUES ($1, $2, " now ", $3) RETURNING id"
            ))
            .bind(&fence.org_id)
            .bind(&trigger)
            .bind(profiles)
            .fetch_one(&mut *tx)
            .await?
            .int("id")?;
            consume(tx, hint_ids, id).await?;
            Ok(id)
        })
        .await
    }

    pub(crate) async fn record_deploy(
        &self,
        fence: &Fence,
        run: RunId,
        deploy_id: &str,
        check_only: bool,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        let updated = self
            .fenced(fence, async |tx| {
                query(sql!(
                    "UPDATE runs SET deploy_id = $2, check_only = $3, \
                       deploy_submitted_at = " now " \
                     WHERE id = $1 AND org_id = $4 AND outcome IS NULL"
                ))
                .bind(run)
                .bind(deploy_id)
                .bind(check_only)
                .bind(&fence.org_id)
                .execute(tx)
                .await
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::Data(format!(
                "run {run} of org {} does not exist or already has an outcome",
                fence.org_id
            )));
        }
        Ok(())
    }

    pub(crate) async fn finish_run(
        &self,
        fence: &Fence,
        run: RunId,
        outcome: Outcome,
        plan: Option<&PlanRecord>,
        failures: &[String],
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        let plan = Arg::opt_json(plan)?;
        let failures = Arg::json(failures)?;
        self.end_run(fence, run, async |tx| {
            query(sql!(
                "UPDATE runs SET outcome = $2, finished_at = " now ", \
                   plan = COALESCE($3, plan), failures = $4, error = $5 \
                 WHERE id = $1 AND org_id = $6 AND NOT deploy_closed \
                   AND (outcome IS NULL OR outcome = 'unknown')"
            ))
            .bind(run)
            .bind(outcome.as_str())
            .bind(plan)
            .bind(failures)
            .bind(error)
            .bind(&fence.org_id)
            .execute(tx)
            .await
        })
        .await
    }

    pub(crate) async fn close_deploy(
        &self,
        fence: &Fence,
        run: RunId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        self.end_run(fence, run, async |tx| {
            query(sql!(
                "UPDATE runs SET outcome = 'unknown', finished_at = " now ", error = $2, \
                   deploy_closed = TRUE \
                 WHERE id = $1 AND org_id = $3 AND NOT deploy_closed \
                   AND (outcome IS NULL OR outcome = 'unknown')"
            ))
            .bind(run)
            .bind(reason)
            .bind(&fence.org_id)
            .execute(tx)
            .await
        })
        .await
    }

    pub(crate) async fn close_abandoned_runs(
        &self,
        fence: &Fence,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.check_open()?;
        self.fenced(fence, async |tx| {
            query(sql!(
                "UPDATE runs SET outcome = 'failed', finished_at = " now ", error = $2 \
                 WHERE org_id = $1 AND outcome IS NULL AND deploy_id IS NULL"
            ))
            .bind(&fence.org_id)
            .bind(reason)
            .execute(tx)
            .await
        })
        .await
    }

    pub(crate) async fn in_flight_deploy(
        &self,
        org_id: &str,
    ) -> Result<Option<InFlightDeploy>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let row = query(sql!(
            "SELECT r.id, r.deploy_id, r.check_only, r.deploy_submitted_at FROM runs r \
             WHERE r.org_id = $1 AND r.deploy_id IS NOT NULL AND NOT r.deploy_closed \
               AND (r.outcome IS NULL OR r.outcome = 'unknown') \
               AND NOT EXISTS (SELECT 1 FROM runs f WHERE f.deploy_id = r.deploy_id \
                               AND f.outcome IS NOT NULL AND f.outcome <> 'unknown') \
             ORDER BY r.id DESC LIMIT 1"
        ))
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(InFlightDeploy {
                run_id: row.int("id")?,
                deploy_id: row.text("deploy_id")?,
                check_only: row.opt_flag("check_only")?.unwrap_or(false),
                submitted_at: row.stamp("deploy_submitted_at")?,
            })
        })
        .transpose()
    }

    pub(crate) async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let rows = query(select_runs!("ORDER BY id DESC LIMIT $1"))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(run_record).collect()
    }

    pub(crate) async fn recent_runs_of(
        &self,
        org_id: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let rows = query(select_runs!("WHERE org_id = $2 ORDER BY id DESC LIMIT $1"))
            .bind(i64::from(limit))
            .bind(org_id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(run_record).collect()
    }

    pub(crate) async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let row = query(select_runs!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(run_record).transpose()
    }

    pub(crate) async fn run_for_hint(&self, hint_id: i64) -> Result<Option<RunId>, StoreError> {
        self.check_open()?;
        let mut conn = self.db.reader().await?;
        let row = query(sql!("SELECT run_id FROM hints WHERE id = $1"))
            .bind(hint_id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(|row| row.opt_int("run_id")).transpose()?.flatten())
    }
}

fn run_record(row: &impl Row) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: row.int("id")?,
        org_id: row.text("org_id")?,
        trigger: row.parsed("trigger_kind")?,
        started_at: row.stamp("started_at")?,
        finished_at: row.opt_stamp("finished_at")?,
        outcome: row.opt_parsed("outcome")?,
        profiles: row.json("profiles")?,
        deploy_id: row.opt_text("deploy_id")?,
        error: row.opt_text("error")?,
        failures: row.json("failures")?,
        plan: row.opt_json("plan")?,
    })
}
