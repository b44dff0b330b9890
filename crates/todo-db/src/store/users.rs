//! Accounts. Creating an account and listing everyone's is admin work (there is no user identity
//! yet, or it spans users); reading, changing and deleting one's own account is user work.

use tokio_postgres::Row;

use crate::db::Stmt;
use crate::db::{Admin, UserScope};
use crate::error::{Error, Result};
use crate::model::{NewUser, Notifications, Preferences, PreferencesPatch, Privacy, User, UserId, UserPatch};

const COLUMNS: &str = "id, email, display_name, first_name, last_name, bio, avatar_url, email_verified, is_active, \
                       created_at, updated_at, last_login_at";

/// A user from a row of [`COLUMNS`], read by name.
fn user_from_row(r: &Row) -> User {
    User {
        id: UserId(r.get("id")),
        email: r.get("email"),
        display_name: r.get("display_name"),
        first_name: r.get("first_name"),
        last_name: r.get("last_name"),
        bio: r.get("bio"),
        avatar_url: r.get("avatar_url"),
        email_verified: r.get("email_verified"),
        is_active: r.get("is_active"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        last_login_at: r.get("last_login_at"),
    }
}

const PREFERENCES: &str = "theme::text, language, email_notifications, push_notifications, task_reminders, \
                           task_assignments, task_completions, weekly_summary, profile_visibility::text, show_email, \
                           show_activity, show_tasks";

/// Preferences from a row of [`PREFERENCES`], read by name.
fn preferences_from_row(r: &Row) -> Result<Preferences> {
    Ok(Preferences {
        theme: r.get::<_, &str>("theme").parse()?,
        language: crate::model::Language::parse(r.get("language"))?,
        notifications: Notifications {
            email: r.get("email_notifications"),
            push: r.get("push_notifications"),
            task_reminders: r.get("task_reminders"),
            task_assignments: r.get("task_assignments"),
            task_completions: r.get("task_completions"),
            weekly_summary: r.get("weekly_summary"),
        },
        privacy: Privacy {
            profile_visibility: r.get::<_, &str>("profile_visibility").parse()?,
            show_email: r.get("show_email"),
            show_activity: r.get("show_activity"),
            show_tasks: r.get("show_tasks"),
        },
    })
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
             is_active = coalesce($4, is_active), first_name = coalesce($5, first_name), \
             last_name = coalesce($6, last_name), bio = coalesce($7, bio), \
             avatar_url = case when $8 then $9 else avatar_url end where id = $1 returning {COLUMNS}"
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
                    &patch.first_name.as_ref().map(|n| n.as_str()),
                    &patch.last_name.as_ref().map(|n| n.as_str()),
                    &patch.bio.as_ref().map(|b| b.as_str()),
                    &patch.avatar_url.is_some(),
                    &patch.avatar_url.as_ref().and_then(|a| a.as_ref().map(|a| a.as_str())),
                ],
            )
            .await?;
        Ok(user_from_row(&row))
    }

    /// The user's preferences; the defaults when they never set any.
    pub async fn preferences(&self) -> Result<Preferences> {
        let sql = format!("select {PREFERENCES} from user_preferences where user_id = $1");
        match self.scope.query_opt(&sql, &[&self.scope.user_id().0]).await? {
            Some(r) => preferences_from_row(&r),
            None => Ok(Preferences::default()),
        }
    }

    /// Changes the settings `patch` sets (the others keep their value, or their default), in one
    /// transaction and one round trip; returns them all.
    pub async fn set_preferences(&self, patch: &PreferencesPatch) -> Result<Preferences> {
        let user = self.scope.user_id().0;
        let create = "insert into user_preferences (user_id) values ($1) on conflict do nothing";
        let update = format!(
            "update user_preferences set theme = coalesce($2::text::ui_theme, theme), \
             language = coalesce($3, language), email_notifications = coalesce($4, email_notifications), \
             push_notifications = coalesce($5, push_notifications), task_reminders = coalesce($6, task_reminders), \
             task_assignments = coalesce($7, task_assignments), task_completions = coalesce($8, task_completions), \
             weekly_summary = coalesce($9, weekly_summary), \
             profile_visibility = coalesce($10::text::profile_visibility, profile_visibility), \
             show_email = coalesce($11, show_email), show_activity = coalesce($12, show_activity), \
             show_tasks = coalesce($13, show_tasks) where user_id = $1 returning {PREFERENCES}"
        );
        let theme = patch.theme.map(|t| t.as_str());
        let language = patch.language.as_ref().map(|l| l.as_str());
        let visibility = patch.profile_visibility.map(|v| v.as_str());
        let rows = self
            .scope
            .pipeline(&[
                Stmt::new(create, &[&user]),
                Stmt::new(
                    &update,
                    &[
                        &user,
                        &theme,
                        &language,
                        &patch.email_notifications,
                        &patch.push_notifications,
                        &patch.task_reminders,
                        &patch.task_assignments,
                        &patch.task_completions,
                        &patch.weekly_summary,
                        &visibility,
                        &patch.show_email,
                        &patch.show_activity,
                        &patch.show_tasks,
                    ],
                ),
            ])
            .await?;
        let row = rows.last().and_then(|r| r.first()).ok_or(Error::NotFound { entity: "user" })?;
        preferences_from_row(row)
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
