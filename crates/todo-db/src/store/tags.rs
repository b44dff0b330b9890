//! Tags of one user: names unique per user ignoring case.

use tokio_postgres::Row;

use crate::db::UserScope;
use crate::error::Result;
use crate::model::{Color, Tag, TagId, TagName};

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

    /// All of this user's tags, by name.
    pub async fn list(&self) -> Result<Vec<Tag>> {
        let sql = format!("select {COLUMNS} from tags order by lower(name)");
        Ok(self.scope.query(&sql, &[]).await?.iter().map(tag_from_row).collect())
    }
}
