#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| todo_db_testkit::fuzz::settings(data));
