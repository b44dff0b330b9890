//! Tags of one user: names unique per user ignoring case.

use tokio_postgres::Row;

use crate::db::UserScope;
use crate::error::Error;
use crate::error::Result;
use crate::model::{Color, Tag, TagId, TagName, TagUsage};

const COLUMNS: &str = "id, name, color, created_at";

fn tag_from_row(r: &Row) -> Tag {
    Tag { id: TagId(r.get(0)), name: r.get(1), color: r.get(2), created_at: r.get(3) }
}

pub struct Tags<'a> {
    pub(crate) scope: &'a UserScope,
}

impl Tags<'_> {
    pub async fn create(&self, name: &TagName, color: Option<&Color>) -> Result<Tag> {
        let sql = format!("insert into tags (id, user_id, name, color) values ($1, $2, $3, $4) returning {COLUMNS}");
        let row = self
            .scope
            .query_found(
                "tag",
                &sql,
                &[&TagId::new().0, &self.scope.user_id().0, &name.as_str(), &color.map(Color::as_str)],
            )
            .await?;
        Ok(tag_from_row(&row))
    }

    pub async fn rename(&self, id: TagId, name: &TagName) -> Result<Tag> {
        let sql = format!("update tags set name = $2 where id = $1 returning {COLUMNS}");
        Ok(tag_from_row(&self.scope.query_found("tag", &sql, &[&id.0, &name.as_str()]).await?))
    }

    pub async fn set_color(&self, id: TagId, color: Option<&Color>) -> Result<Tag> {
        let sql = format!("update tags set color = $2 where id = $1 returning {COLUMNS}");
        Ok(tag_from_row(&self.scope.query_found("tag", &sql, &[&id.0, &color.map(Color::as_str)]).await?))
    }

    /// Deletes the tag and detaches it from every task.
    pub async fn delete(&self, id: TagId) -> Result<()> {
        self.scope.query_found("tag", "delete from tags where id = $1 returning id", &[&id.0]).await?;
        Ok(())
    }

    /// Every tag of this user with the number of live tasks carrying it, most used first (then by
    /// name).
    pub async fn statistics(&self) -> Result<Vec<TagUsage>> {
        self.usage("", 10_000).await
    }

    /// The user's tags whose name starts with `prefix` (ignoring case; `%` and `_` are literal),
    /// most used first, at most `limit` (1..=100): for completing a tag as it is typed.
    pub async fn autocomplete(&self, prefix: &str, limit: u32) -> Result<Vec<TagUsage>> {
        if !(1..=100).contains(&limit) {
            return Err(Error::validation("limit", "must be between 1 and 100"));
        }
        if prefix.chars().count() > 50 {
            return Err(Error::validation("prefix", "is longer than a tag name (50 characters)"));
        }
        self.usage(prefix.trim(), i64::from(limit)).await
    }

    async fn usage(&self, prefix: &str, limit: i64) -> Result<Vec<TagUsage>> {
        let sql = format!(
            "select {COLUMNS}, (select count(*) from task_tags tt where tt.user_id = g.user_id and tt.tag_id = g.id) as n \
             from tags g where lower(g.name) like lower($1) order by n desc, lower(g.name) limit $2"
        );
        let pattern = format!("{}%", super::tasks::like_literal(prefix));
        let rows = self.scope.query(&sql, &[&pattern, &limit]).await?;
        Ok(rows.iter().map(|r| TagUsage { tag: tag_from_row(r), tasks: r.get("n") }).collect())
    }

    /// All of this user's tags, by name.
    pub async fn list(&self) -> Result<Vec<Tag>> {
        let sql = format!("select {COLUMNS} from tags order by lower(name)");
        Ok(self.scope.query(&sql, &[]).await?.iter().map(tag_from_row).collect())
    }
}
