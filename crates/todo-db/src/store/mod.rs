//! The store: users, tasks and tags. Every operation runs in a [`UserScope`](crate::db::UserScope)
//! (RLS as that user) except account creation and cross-user listing, which need
//! [`Admin`](crate::db::Admin).

pub mod batch;
pub mod tags;
pub mod tasks;
pub mod users;

pub use batch::{BatchOp, BatchOutcome, BatchResult};
pub use tags::Tags;
pub use tasks::Tasks;
pub use users::{AdminUsers, Profile};

use crate::db::UserScope;

impl UserScope {
    pub fn tasks(&self) -> Tasks<'_> {
        Tasks { scope: self }
    }
    pub fn tags(&self) -> Tags<'_> {
        Tags { scope: self }
    }
    pub fn profile(&self) -> Profile<'_> {
        Profile { scope: self }
    }
}

impl crate::db::Admin {
    pub fn users(&self) -> AdminUsers<'_> {
        AdminUsers { admin: self }
    }
}
