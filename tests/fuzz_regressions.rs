//! Every seed of every fuzz target, and every input that once crashed one, run through the
//! very harness functions the fuzzers use (`fuzz/src/lib.rs`), so a regression fails
//! `cargo test` without needing cargo-fuzz.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

/// Runs `harness` on every file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`.
fn run_all(target: &str, harness: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).expect("read input");
            let outcome = std::panic::catch_unwind(|| harness(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "{target}: no seeds found");
    println!("{target}: {count} inputs");
}

#[test]
fn imap_command_inputs() {
    run_all("imap_command", harness::imap_command);
}

#[test]
fn smtp_session_inputs() {
    run_all("smtp_session", harness::smtp_session);
}

#[test]
fn mime_structure_inputs() {
    run_all("mime_structure", harness::mime_structure);
}

#[test]
fn link_macros_inputs() {
    run_all("link_macros", harness::link_macros);
}

#[test]
fn graph_json_inputs() {
    run_all("graph_json", harness::graph_json);
}
