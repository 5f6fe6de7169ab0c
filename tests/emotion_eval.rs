//! Macro-F1 floors on the dev sets in `../shared/data` (GoEmotions dev >= 0.46, MELD dev >= 0.20),
//! through the same `eval` the CLI runs; prints each per-label table. CI always has `../shared`;
//! elsewhere the test skips with a notice when the data is missing.

use std::path::{Path, PathBuf};

use emotibot::emotion::cli::eval;

fn shared_data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(relative)
}

fn check_floor(relative: &str, floor: f64) {
    let path = shared_data(relative);
    if !path.exists() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!in_ci, "{} is missing in CI", path.display());
        println!(
            "SKIPPED: {} not found (no ../shared on this machine)",
            path.display()
        );
        return;
    }
    let mut printed = Vec::new();
    let report = match eval(&path, &mut printed) {
        Ok(report) => report,
        Err(e) => panic!("eval of {} failed: {e}", path.display()),
    };
    println!("{}", String::from_utf8_lossy(&printed));
    assert!(
        report.malformed.is_empty(),
        "malformed lines: {:?}",
        report.malformed
    );
    assert!(report.confusion.total() > 1000, "too few examples read");
    let macro_f1 = report.macro_f1();
    assert!(
        macro_f1 >= floor,
        "{relative}: macro-F1 {macro_f1:.4} is below the floor {floor}"
    );
}

#[test]
fn goemotions_dev_macro_f1_floor() {
    check_floor("goemotions/dev.tsv", 0.46);
}

#[test]
fn meld_dev_macro_f1_floor() {
    check_floor("meld/dev.tsv", 0.20);
}
