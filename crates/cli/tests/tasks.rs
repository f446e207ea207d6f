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
