//! Demo accounts for trying todo-db by hand, and fixtures for tests.

use serde::Serialize;

use todo_db::db::Db;
use todo_db::error::{Error, Result};
use todo_db::model::{NewTask, NewUser, Priority, TagName};
use todo_db::security::{self, ClientInfo};

/// Demo accounts for trying todo-db by hand: email, display name, tasks (title, priority, tags).
pub(super) type DemoUser = (&'static str, &'static str, &'static [(&'static str, Priority, &'static [&'static str])]);

pub(super) const DEMO: [DemoUser; 3] = [
    (
        "alice@example.com",
        "Alice",
        &[
            ("Write the quarterly report", Priority::High, &["work"]),
            ("Book dentist appointment", Priority::Medium, &["health"]),
            ("Renew passport", Priority::Urgent, &["errands"]),
            ("Plan the team offsite", Priority::Low, &["work", "planning"]),
        ],
    ),
    (
        "bob@example.com",
        "Bob",
        &[
            ("Fix the bike's brakes", Priority::High, &["errands"]),
            ("Read \"The Pragmatic Programmer\"", Priority::Low, &["reading"]),
            ("Call grandma", Priority::Medium, &[]),
        ],
    ),
    (
        "chloe@example.com",
        "Chloé",
        &[
            ("Réserver le train pour Lyon", Priority::Medium, &["voyage"]),
            ("Renew the car insurance", Priority::High, &["admin", "car"]),
        ],
    ),
];

/// A demo account created by [`load_demo`], with the password it was given. The password exists
/// only here: print it once, store it nowhere.
#[derive(Debug, Clone, Serialize)]
pub struct DemoAccount {
    pub email: String,
    pub password: String,
    pub tasks: usize,
}

/// Creates the demo accounts that do not exist yet, through the ordinary store (so they are
/// audited like any user's work), each with a fresh random password. Existing ones are skipped
/// and their passwords left alone.
pub async fn load_demo(db: &Db) -> Result<Vec<DemoAccount>> {
    let mut made = Vec::new();
    for (email, name, tasks) in DEMO {
        let user = match db.admin().users().create(&NewUser::new(email, name)?).await {
            Ok(u) => u,
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        };
        let scope = db.user(user.id);
        let password = security::tokens::readable_password();
        security::set_password(&scope, &password, &ClientInfo::default()).await?;
        for (i, (title, priority, tags)) in tasks.iter().enumerate() {
            let task = scope.tasks().create(&NewTask::new(title)?.priority(*priority)).await?;
            let tags = tags.iter().map(|t| TagName::parse(t)).collect::<Result<Vec<_>>>()?;
            if !tags.is_empty() {
                scope.tasks().tag(task.id, &tags).await?;
            }
            if i == 1 {
                scope.tasks().complete(task.id).await?;
            }
        }
        made.push(DemoAccount { email: email.to_string(), password, tasks: tasks.len() });
    }
    Ok(made)
}

/// Test fixtures: exactly the user, tasks and tags a test needs, created through the ordinary
/// store (so they are validated, isolated and audited like real use).
///
/// ```ignore
/// let f = seed::UserFixture::new("ann@example.com")
///     .tasks("chore", 5)
///     .task(NewTask::new("pay rent")?.priority(Priority::High), true, &["home"])
///     .create(&db)
///     .await?;
/// ```
#[derive(Debug, Clone)]
pub struct UserFixture {
    email: String,
    tasks: Vec<(NewTask, bool, Vec<String>)>,
}

/// What [`UserFixture::create`] made, in the order the tasks were given.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub user: todo_db::model::UserId,
    pub tasks: Vec<todo_db::model::TaskId>,
}

impl UserFixture {
    pub fn new(email: &str) -> Self {
        UserFixture { email: email.to_string(), tasks: Vec::new() }
    }

    /// One task, completed or not, with these tag names (created as needed).
    pub fn task(mut self, task: NewTask, completed: bool, tags: &[&str]) -> Self {
        self.tasks.push((task, completed, tags.iter().map(|t| t.to_string()).collect()));
        self
    }

    /// `n` open, untagged tasks titled "`prefix` 1" to "`prefix` n".
    pub fn tasks(mut self, prefix: &str, n: usize) -> Self {
        for i in 1..=n {
            let task = NewTask::new(&format!("{prefix} {i}")).expect("a fixture title is valid");
            self.tasks.push((task, false, Vec::new()));
        }
        self
    }

    pub async fn create(self, db: &Db) -> Result<Fixture> {
        let user = db.admin().users().create(&NewUser::new(&self.email, "Fixture User")?).await?.id;
        let scope = db.user(user);
        let new: Vec<NewTask> = self.tasks.iter().map(|(t, _, _)| t.clone()).collect();
        scope.tasks().create_many(&new).await?;
        let done: Vec<_> = self.tasks.iter().filter(|(_, c, _)| *c).map(|(t, _, _)| t.id).collect();
        if !done.is_empty() {
            scope.tasks().complete_many(&done).await?;
        }
        for (task, _, tags) in self.tasks.iter().filter(|(_, _, tags)| !tags.is_empty()) {
            let names = tags.iter().map(|t| TagName::parse(t)).collect::<Result<Vec<_>>>()?;
            scope.tasks().tag(task.id, &names).await?;
        }
        Ok(Fixture { user, tasks: self.tasks.iter().map(|(t, _, _)| t.id).collect() })
    }
}
