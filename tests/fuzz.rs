//! Property tests of every input parser: arbitrary text (NUL bytes, unicode, huge values,
//! SQL-looking names) never panics, and is either accepted in its documented form or refused with
//! an error that names the field and never echoes a secret.

use proptest::prelude::*;
use todo_db::model::{Color, Cursor, Description, DisplayName, Email, Priority, TagName, TaskTitle};
use todo_db::{Error, PoolSettings};

fn names_a_field(e: &Error) -> bool {
    matches!(e, Error::Validation { .. } | Error::Config(_))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn model_parsers_accept_only_their_documented_forms(s in "\\PC{0,300}|.*\u{0}.*") {
        match TaskTitle::parse(&s) {
            Ok(t) => {
                prop_assert_eq!(t.as_str(), s.trim());
                prop_assert!(!t.as_str().is_empty() && t.as_str().chars().count() <= TaskTitle::MAX_CHARS);
                prop_assert!(!t.as_str().contains('\0'));
            }
            Err(e) => prop_assert!(e.to_string().starts_with("invalid title"), "{e}"),
        }
        match Description::parse(&s) {
            Ok(d) => prop_assert!(!d.as_str().contains('\0')),
            Err(e) => prop_assert!(e.to_string().starts_with("invalid description"), "{e}"),
        }
        match Email::parse(&s) {
            Ok(e) => prop_assert!(e.as_str().contains('@') && !e.as_str().contains('\0')),
            Err(e) => prop_assert!(e.to_string().starts_with("invalid email"), "{e}"),
        }
        if let Err(e) = DisplayName::parse(&s) {
            prop_assert!(e.to_string().starts_with("invalid display_name"), "{e}");
        }
        match TagName::parse(&s) {
            Ok(t) => prop_assert!(!t.as_str().is_empty() && t.as_str() == s.trim()),
            Err(e) => prop_assert!(e.to_string().starts_with("invalid tag"), "{e}"),
        }
        if let Err(e) = Color::parse(&s) {
            prop_assert!(names_a_field(&e));
        }
        if let Err(e) = s.parse::<Priority>() {
            prop_assert!(e.to_string().starts_with("invalid priority"), "{e}");
        }
        if let Err(e) = Cursor::decode(&s) {
            prop_assert!(e.to_string().starts_with("invalid cursor"), "{e}");
        }
        let _ = todo_db::config::parse_duration(&s);
    }

    #[test]
    fn oversized_values_are_refused_not_truncated(n in 256usize..20_000) {
        let long = "x".repeat(n);
        prop_assert!(TaskTitle::parse(&long).is_err());
        prop_assert_eq!(Description::parse(&long).is_ok(), n <= Description::MAX_CHARS);
    }

    #[test]
    fn database_urls_never_panic_and_never_echo_the_password(
        user in "[a-z]{1,8}", password in "[A-Za-z0-9]{12,20}", host in "\\PC{0,30}", rest in "\\PC{0,40}"
    ) {
        for url in [
            format!("postgresql://{user}:{password}@{host}/{rest}"),
            format!("postgresql://{user}:{password}@localhost:{rest}"),
            format!("postgresql://{user}:{password}@localhost/db?sslmode={rest}"),
            format!("{rest}://{user}:{password}@{host}"),
        ] {
            if let Err(e) = todo_db::db::Target::parse(&url, &PoolSettings::default(), false) {
                prop_assert!(names_a_field(&e), "{e}");
                prop_assert!(!e.to_string().contains(&password), "password echoed: {e}");
            }
        }
    }

    #[test]
    fn branch_names_and_backup_keys_refuse_anything_odd(s in "\\PC{0,60}") {
        if todo_db_ops::branch::check_name(&s).is_ok() {
            prop_assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'));
        }
        if let Err(e) = todo_db_ops::backup::Key::parse(&s) {
            prop_assert!(e.to_string().contains("TODO_DB_BACKUP_KEY"));
        }
    }

    #[test]
    fn settings_from_any_environment_values_are_parsed_or_refused_by_name(v in "\\PC{0,20}") {
        for name in [
            "TODO_DB_POOL_SIZE",
            "TODO_DB_ACQUIRE_TIMEOUT",
            "TODO_DB_CONNECT_TIMEOUT",
            "TODO_DB_STATEMENTS",
            "TODO_DB_LOCKOUT_MAX_FAILURES",
            "TODO_DB_HOME",
        ] {
            if let Err(e) = todo_db::Settings::from_lookup(|n| (n == name).then(|| v.clone())) {
                prop_assert!(e.to_string().contains(name), "{e}");
            }
        }
    }
}

#[test]
fn zero_timeouts_are_refused_naming_the_variable() {
    for name in ["TODO_DB_ACQUIRE_TIMEOUT", "TODO_DB_CONNECT_TIMEOUT"] {
        let err = todo_db::Settings::from_lookup(|n| (n == name).then(|| "0".to_string())).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn sql_looking_names_are_refused_everywhere() {
    let evil = "x\"; drop database todo; --";
    assert!(todo_db_ops::branch::check_name(evil).unwrap_err().to_string().contains("a-z"));
    assert!(TagName::parse("a\0b").is_err());
    assert!(TaskTitle::parse("nul\0byte").unwrap_err().to_string().contains("title"));
    // A quoted identifier is quoted, whatever it holds.
    assert_eq!(todo_db::schema::quote_ident(evil), "\"x\"\"; drop database todo; --\"");
}
