//! Secrets that `epai` generates on first start and keeps in the data directory (mode 0600),
//! so a single server needs no configuration and keeps its secrets across restarts.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// The text stored in `data_dir/file_name`, generated there by `generate` (and logged as `what`)
/// on first use. Concurrent first starts agree on one value: each writes a private temporary
/// file and only the first to link it into place wins.
pub fn load_or_create(
    data_dir: &Path,
    file_name: &str,
    what: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let path = data_dir.join(file_name);
    match read(&path, what) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        stored => return stored.with_context(|| format!("cannot read {}", path.display())),
    }
    fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let generated = generate();
    let temporary = data_dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temporary);
    let written =
        write_private(&temporary, &generated).and_then(|()| fs::hard_link(&temporary, &path));
    let _ = fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new {what}");
            Ok(generated)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read(&path, what).with_context(|| format!("cannot read {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

fn write_private(path: &Path, content: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

fn read(path: &Path, what: &str) -> io::Result<String> {
    let content = fs::read_to_string(path)?;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the {what} is readable by other users; run chmod 600 on it"
        );
    }
    Ok(content.trim_end().to_owned())
}

/// Replaces `data_dir/file_name` with `content` (mode 0600) in one step: readers see the old
/// text or the new, never a partial file.
pub fn replace(data_dir: &Path, file_name: &str, content: &str) -> anyhow::Result<()> {
    let path = data_dir.join(file_name);
    let temporary = data_dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temporary);
    let written = write_private(&temporary, content).and_then(|()| fs::rename(&temporary, &path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}
