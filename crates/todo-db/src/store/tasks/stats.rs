//! A user's task counts.

use crate::error::Result;
use crate::model::{Priority, TaskStatistics, TaskStatus};

use super::Tasks;

impl Tasks<'_> {
    /// The user's task counts: total (live), completed, pending, overdue (open, due before now),
    /// in the trash, and per priority and per status (every value, zeros included). One statement.
    pub async fn statistics(&self) -> Result<TaskStatistics> {
        const SQL: &str = "select count(*), count(*) filter (where completed), count(*) filter (where not completed), \
             count(*) filter (where not completed and due_at < now()), (select count(*) from task_trash), \
             (select coalesce(jsonb_object_agg(p, (select count(*) from tasks x where x.priority = p)), '{}') \
              from unnest(enum_range(null::task_priority)) p), \
             (select coalesce(jsonb_object_agg(s, (select count(*) from tasks x where x.status = s)), '{}') \
              from unnest(enum_range(null::task_status)) s) \
             from tasks";
        let r = self.scope.query_found("user", SQL, &[]).await?;
        let counts = |v: serde_json::Value| -> std::collections::BTreeMap<String, i64> {
            serde_json::from_value(v).unwrap_or_default()
        };
        let by_priority = counts(r.get(5));
        let by_status = counts(r.get(6));
        Ok(TaskStatistics {
            total: r.get(0),
            completed: r.get(1),
            pending: r.get(2),
            overdue: r.get(3),
            trashed: r.get(4),
            by_priority: Priority::ALL
                .iter()
                .map(|p| (*p, by_priority.get(p.as_str()).copied().unwrap_or(0)))
                .collect(),
            by_status: TaskStatus::ALL.iter().map(|s| (*s, by_status.get(s.as_str()).copied().unwrap_or(0))).collect(),
        })
    }
}
