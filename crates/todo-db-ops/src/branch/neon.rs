//! Neon branches through the Neon API v2 (see [`crate::neon`]). `main` names the project's
//! default branch when no branch is called that.

use time::OffsetDateTime;

use super::{check_name, Branch, CreateOptions, Provider, MAIN};
use crate::neon::{Neon, NeonBranch};
use todo_db::error::{Error, Result};

pub struct NeonProvider {
    api: Neon,
    /// The database and role connection URIs are for (those of DATABASE_URL).
    database: String,
    role: String,
}

impl NeonProvider {
    pub fn new(api: Neon, database: &str, role: &str) -> Self {
        NeonProvider { api, database: database.into(), role: role.into() }
    }

    fn find<'a>(all: &'a [NeonBranch], name: &str) -> Result<&'a NeonBranch> {
        all.iter()
            .find(|b| b.name == name)
            .or_else(|| if name == MAIN { all.iter().find(|b| b.default) } else { None })
            .ok_or(Error::NotFound { entity: "branch" })
    }

    fn to_branch(all: &[NeonBranch], b: &NeonBranch) -> Branch {
        Branch {
            name: b.name.clone(),
            parent: b.parent_id.as_ref().and_then(|p| all.iter().find(|x| &x.id == p)).map(|p| p.name.clone()),
            location: b.id.clone(),
            created_at: b.created_at,
            protected: b.protected || b.default,
            expires_at: b.expires_at,
        }
    }
}

impl Provider for NeonProvider {
    async fn create(&self, name: &str, options: &CreateOptions) -> Result<Branch> {
        check_name(name)?;
        let all = self.api.list().await?;
        if all.iter().any(|b| b.name == name) {
            return Err(Error::Conflict { field: "branch", constraint: "branch name" });
        }
        let parent_name = options.from.as_deref().unwrap_or(MAIN);
        let parent = Self::find(&all, parent_name)
            .map_err(|_| Error::validation("from", format!("no branch named {parent_name:?} in the Neon project")))?;
        let expires = options.expires_in.map(|d| OffsetDateTime::now_utc() + d);
        let b = self.api.create(name, &parent.id, options.at, expires, true).await?;
        let mut all = all;
        all.push(b.clone());
        Ok(Self::to_branch(&all, &b))
    }

    async fn list(&self) -> Result<Vec<Branch>> {
        let all = self.api.list().await?;
        Ok(all.iter().map(|b| Self::to_branch(&all, b)).collect())
    }

    async fn delete(&self, name: &str, _force: bool) -> Result<()> {
        let all = self.api.list().await?;
        let b = Self::find(&all, name)?;
        if b.default || b.protected {
            return Err(Error::validation("branch", format!("{name} is protected (or the project's default branch)")));
        }
        let children: Vec<&str> =
            all.iter().filter(|c| c.parent_id.as_deref() == Some(&b.id)).map(|c| c.name.as_str()).collect();
        if !children.is_empty() {
            return Err(Error::validation(
                "branch",
                format!("{name} has branches of its own: {}", children.join(", ")),
            ));
        }
        self.api.delete(&b.id).await
    }

    async fn reset(&self, name: &str, _options: &CreateOptions) -> Result<Branch> {
        let all = self.api.list().await?;
        let b = Self::find(&all, name)?;
        if b.protected || b.default {
            return Err(Error::validation("branch", format!("{name} is protected: it cannot be reset")));
        }
        let parent =
            b.parent_id.as_deref().ok_or_else(|| Error::validation("branch", format!("{name} has no parent")))?;
        let stamp = OffsetDateTime::now_utc().unix_timestamp();
        let restored = self.api.restore(&b.id, parent, None, &format!("{name}_old_{stamp}")).await?;
        Ok(Self::to_branch(&all, &restored))
    }

    async fn protect(&self, name: &str, on: bool) -> Result<Branch> {
        let all = self.api.list().await?;
        let b = Self::find(&all, name)?;
        // Neon allows no expiry on a protected branch.
        let patch = if on {
            serde_json::json!({"protected": true, "expires_at": null})
        } else {
            serde_json::json!({"protected": false})
        };
        let updated = self.api.update(&b.id, patch).await?;
        Ok(Self::to_branch(&all, &updated))
    }

    async fn url(&self, name: &str, pooled: bool) -> Result<String> {
        let all = self.api.list().await?;
        let b = Self::find(&all, name)?;
        self.api.connection_uri(&b.id, &self.database, &self.role, pooled).await
    }
}
