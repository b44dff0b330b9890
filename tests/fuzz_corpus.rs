//! Replays the fuzz corpus (`fuzz/corpus/TARGET/`, the seeds and every input libFuzzer kept, and
//! the crashes it found, fixed) through the fuzz targets of `todo_db_testkit::fuzz`: what held
//! while fuzzing holds on every test run, on a stable toolchain.

use std::path::Path;

use todo_db_testkit::fuzz::{cleanup, TARGETS};

#[test]
fn every_corpus_input_of_every_target_holds_its_invariants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: the corpus of {name} is missing ({e})", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(inputs.len() >= 3, "{name}: only {} corpus inputs", inputs.len());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let replay = std::panic::catch_unwind(|| target(&data));
            assert!(replay.is_ok(), "{name}: {} fails its invariants", input.display());
        }
    }
    cleanup();
}
