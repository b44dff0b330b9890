//! Accounts. Creating an account and listing everyone's is admin work (there is no user identity
//! yet, or it spans users); reading, changing and deleting one's own account is user work.

use tokio_postgres::Row;

use crate::db::{Admin, UserScope};
use crate::error::{Error, Result};
use crate::model::{NewUser, User, UserId, UserPatch};

const COLUMNS: &str = "id, email, display_name, is_active, created_at, updated_at, last_login_at";

fn user_from_row(r: &Row) -> User {
    User {
        id: UserId(r.get(0)),
        email: r.get(1),
        display_name: r.get(2),
        is_active: r.get(3),
        created_at: r.get(4),
        updated_at: r.get(5),
        last_login_at: r.get(6),
    }
}

/// The signed-in user's own account.
pub struct Profile<'a> {
    pub(crate) scope: &'a UserScope,
}

impl Profile<'_> {
    pub async fn get(&self) -> Result<User> {
        let sql = format!("select {COLUMNS} from users where id = $1");
        Ok(user_from_row(&self.scope.query_found("user", &sql, &[&self.scope.user_id().0]).await?))
    }

    pub async fn update(&self, patch: &UserPatch) -> Result<User> {
        let sql = format!(
            "update users set email = coalesce($2, email), display_name = coalesce($3, display_name), \
             is_active = coalesce($4, is_active) where id = $1 returning {COLUMNS}"
        );
        let row = self
            .scope
            .query_found(
                "user",
                &sql,
                &[
                    &self.scope.user_id().0,
                    &patch.email.as_ref().map(|e| e.as_str()),
                    &patch.display_name.as_ref().map(|d| d.as_str()),
                    &patch.is_active,
                ],
            )
            .await?;
        Ok(user_from_row(&row))
    }

    /// Deletes the account and, by cascade, all of its tasks and tags.
    pub async fn delete(&self) -> Result<()> {
        self.scope
            .query_found("user", "delete from users where id = $1 returning id", &[&self.scope.user_id().0])
            .await?;
        Ok(())
    }
}

/// Account administration across users.
pub struct AdminUsers<'a> {
    pub(crate) admin: &'a Admin,
}

impl AdminUsers<'_> {
    pub async fn create(&self, new: &NewUser) -> Result<User> {
        let sql = format!("insert into users (id, email, display_name) values ($1, $2, $3) returning {COLUMNS}");
        let row = self
            .admin
            .query_opt(&sql, &[&new.id.0, &new.email.as_str(), &new.display_name.as_str()])
            .await?
            .ok_or(Error::NotFound { entity: "user" })?;
        Ok(user_from_row(&row))
    }

    pub async fn get(&self, id: UserId) -> Result<User> {
        let sql = format!("select {COLUMNS} from users where id = $1");
        let row = self.admin.query_opt(&sql, &[&id.0]).await?.ok_or(Error::NotFound { entity: "user" })?;
        Ok(user_from_row(&row))
    }

    pub async fn find_by_email(&self, email: &str) -> Result<User> {
        let sql = format!("select {COLUMNS} from users where lower(email) = lower($1)");
        let row = self.admin.query_opt(&sql, &[&email.trim()]).await?.ok_or(Error::NotFound { entity: "user" })?;
        Ok(user_from_row(&row))
    }

    /// Deletes the account and everything it owns.
    pub async fn delete(&self, id: UserId) -> Result<()> {
        self.admin
            .query_opt("delete from users where id = $1 returning id", &[&id.0])
            .await?
            .ok_or(Error::NotFound { entity: "user" })?;
        Ok(())
    }

    /// Accounts in id (creation) order, `limit` at a time after `after`.
    pub async fn list(&self, after: Option<UserId>, limit: i64) -> Result<Vec<User>> {
        let sql = format!("select {COLUMNS} from users where ($1::uuid is null or id > $1) order by id limit $2");
        Ok(self.admin.query(&sql, &[&after.map(|u| u.0), &limit]).await?.iter().map(user_from_row).collect())
    }
}
