//! What the binary's test files share: an `epai` command that sees none of the settings of the
//! environment running the tests. Each test file uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The `epai` binary with every `EPAI_*` variable and `DATABASE_URL` removed, so that a
/// developer's own configuration never changes what a test runs.
pub fn clean_epai() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_epai"));
    for (var, _) in std::env::vars_os() {
        if var
            .to_str()
            .is_some_and(|v| v.starts_with("EPAI_") || v == "DATABASE_URL")
        {
            command.env_remove(var);
        }
    }
    command
}

/// [`clean_epai`] logging warnings only, run in a scratch directory: the default data
/// directory (`.epai` in the working directory) and what a command keeps there (secrets, keys)
/// stay out of the checkout; a test that needs its own directory names one.
pub fn epai() -> Command {
    let mut command = clean_epai();
    let scratch =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("epai-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    command.current_dir(scratch);
    command.env("EPAI_LOG", "warn");
    command
}
