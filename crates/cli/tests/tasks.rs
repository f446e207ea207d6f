//! Every task is offered by every command that runs on tasks, and a command a task cannot run is one clear
//! error line (no data is read).

use std::path::PathBuf;
use std::process::{Command, Output};

fn more(args: &[&str]) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_more"))
        .args(args)
        .env("MORE_DATA", "/nonexistent")
        .current_dir(root)
        .output()
        .expect("runs")
}

#[test]
fn help_lists_the_tasks_of_every_task_command() {
    for (command, tasks) in [
        ("train", &["mnist", "angio", "wbc"][..]),
        ("reproduce", &["mnist", "angio", "wbc"]),
        ("eval", &["mnist", "angio", "wbc"]),
        ("bench", &["mnist", "angio", "wbc"]),
    ] {
        let out = more(&[command, "--help"]);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for task in tasks {
            assert!(help.contains(&format!("- {task}:")), "`more {command} --help` does not list {task}: {help}");
        }
    }
}

#[test]
fn a_command_a_task_lacks_is_one_clear_line() {
    for args in [["eval", "wbc", "--model", "models/wbc-mlp.morenn"], ["bench", "wbc", "--seconds", "0.01"]] {
        let out = more(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains("(mnist, angio); wbc has none"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = more(&["train", "cifar"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'cifar'") && err.contains("mnist"), "{err}");
}

/// An option the task does not read is one clear line naming the option, the tasks that read it and what
/// to do instead — before any data is read or any server contacted. Options the task reads pass the check
/// (and fail later here, on the missing data).
#[test]
fn an_option_the_task_does_not_read_is_refused() {
    let server = "http://127.0.0.1:9";
    for (args, wanted) in [
        (
            &["train", "mnist", "--encrypted", "--server", server, "--samples", "3000"][..],
            "--samples applies to wbc, not mnist (use --limit to train on fewer digits)",
        ),
        (&["train", "mnist", "--n-train", "100"], "--n-train applies to wbc, not mnist (use --limit"),
        (&["train", "wbc", "--limit", "100"], "--limit applies to mnist and angio, not wbc (use --samples"),
        (&["train", "wbc", "--augment", "2"], "--augment applies to mnist and angio, not wbc"),
        (&["train", "wbc", "--arch", "square", "--samples", "20"], "wbc trains the tanh MLP, or with --arch bfv"),
        (&["bench", "mnist", "--task", "wbc"], "--task applies to bfv (more bench bfv --task wbc), not mnist"),
        (&["bench", "bfv", "--task", "wbc", "--batch", "10"], "--batch does not apply to bfv --task wbc"),
        (&["bench", "bfv", "--task", "wbc", "--record"], "--record does not apply to bfv --task wbc"),
        (&["bench", "bfv", "--task", "wbc", "--data", "d"], "--data does not apply to bfv --task wbc"),
        (
            &["bench", "bfv", "--task", "angio", "--batch", "10"],
            "--batch applies to bfv on mnist (its 10,000 test images), not angio",
        ),
        (&["bench", "bfv", "--task", "angio", "--seconds", "2"], "--seconds applies to mnist and angio, not bfv"),
        (&["train", "angio", "--arch", "square"], "angio trains angio-cnn, or with --arch bfv the network BFV"),
        (&["train", "angio", "--arch", "bfv", "--encrypted"], "--arch bfv trains on plaintext"),
        (&["reproduce", "angio", "--arch", "bfv"], "--arch applies to mnist, not angio (more reproduce angio compares"),
        (&["eval", "wbc", "--scheme", "bfv", "--data", "d"], "--data does not apply to wbc"),
        (
            &["bfv", "quantize", "--model", "models/wbc-mlp.morenn"],
            "models/wbc-mlp.morenn is a wbc model: more bfv quantize-wbc quantizes it",
        ),
        (&["eval", "mnist"], "--model is required with --scheme more"),
        (&["train", "angio", "--validation", "100"], "--validation applies to mnist, not angio"),
        (&["train", "angio", "--encrypted", "--server", server], "--server applies to mnist and wbc, not angio"),
        (
            &["train", "mnist", "--encrypted", "--server", server, "--augment", "0"],
            "--augment does not apply when a server trains mnist (--server) (the server trains",
        ),
        (&["reproduce", "angio", "--optimizer", "adam"], "--optimizer applies to mnist, not angio"),
        (&["reproduce", "angio", "--augment", "4"], "--augment applies to mnist, not angio"),
        (&["reproduce", "wbc", "--svg", "x.svg"], "--svg applies to mnist and angio, not wbc"),
        (&["reproduce", "wbc", "--test-limit", "10"], "--test-limit applies to mnist, not wbc"),
        (&["reproduce", "mnist", "--samples", "10"], "--samples applies to wbc, not mnist"),
        (&["reproduce", "mnist", "--runs", "2", "--save", "d"], "--save writes the models of a single run"),
        (&["bench", "mnist", "--limit", "5"], "--limit applies to bfv, not mnist (use --seconds"),
        (&["bench", "bfv", "--seconds", "2"], "--seconds applies to mnist and angio, not bfv (use --limit"),
        (&["eval", "mnist", "--scheme", "bfv", "--model", "m", "--record"], "--record applies to --scheme more"),
        (&["bench", "mnist", "--batch", "5"], "--batch, --packing, --record and --server apply to bfv, not mnist"),
        (&["bench", "bfv", "--packing", "slots"], "--packing, --record and --server apply with --batch N"),
        (&["bench", "bfv", "--batch", "5", "--limit", "5"], "--limit and --batch both say how many images"),
        (
            &["bench", "bfv", "--batch", "500", "--record", "--server", "http://x"],
            "--record stores figures measured in process",
        ),
        (&["bench", "bfv", "--batch", "0"], "--batch must be at least 1"),
    ] {
        let out = more(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(wanted), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // Given at its default value, an option the task reads passes; so does every option a task reads.
    let out = std::env::temp_dir().join(format!("more-cli-unwritten-{}.morenn", std::process::id()));
    let out = out.to_str().unwrap();
    for args in [
        &["train", "mnist", "--augment", "2", "--limit", "10", "--validation", "5", "--arch", "relu", "--out", out][..],
        &["train", "angio", "--augment", "2", "--patience", "1", "--limit", "10", "--out", out],
        &["reproduce", "mnist", "--optimizer", "sgd", "--test-limit", "5", "--svg", "x.svg"],
        &["reproduce", "angio", "--svg", "x.svg", "--limit", "5"],
    ] {
        let out = more(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("/nonexistent"), "{args:?}: {err}");
    }
}

/// An existing output file is kept: the command names it and says how to write elsewhere or overwrite,
/// before doing any work.
#[test]
fn an_existing_model_file_is_not_overwritten() {
    let file = std::env::temp_dir().join(format!("more-cli-existing-{}.morenn", std::process::id()));
    std::fs::write(&file, b"keep me").unwrap();
    let path = file.to_str().unwrap();
    for args in [
        &["train", "wbc", "--out", path][..],
        &["train", "mnist", "--encrypted", "--out", path],
        &["bfv", "quantize", "--model", "models/mnist-cnn-relu.morenn", "--out", path],
    ] {
        let out = more(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            format!("error: {path} already exists; pass --out PATH to write elsewhere, or --force to overwrite it"),
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    std::fs::remove_file(&file).unwrap();
}

/// The WBC surrogate under BFV, end to end on three held-out patients: one JSON line with the figures, the
/// encrypted outputs equal to the integer network's.
#[test]
fn bench_bfv_task_wbc_prints_one_json_line() {
    let out = more(&["bench", "bfv", "--task", "wbc", "--json", "--limit", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["task"], "wbc");
    assert_eq!(v["images"], 3);
    assert_eq!(v["exact_outputs"], 3);
    assert_eq!((v["security_bits"].as_u64(), v["ring_degree"].as_u64()), (Some(128), Some(8192)));
    for key in
        ["mean_relative_error", "worst_output_relative_error", "ms_per_image", "eval_key_bytes", "ciphertext_bytes"]
    {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert!(v["worst_output_relative_error"].as_f64().unwrap() < 0.05, "{v}");
}
