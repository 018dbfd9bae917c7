//! Local repositories are private: backups hold the site configuration's secrets, code host
//! tokens and access tokens. Directories the repository creates are `0700` and files `0600`,
//! whatever the process umask: a backup's directory is made private before anything is
//! written into it, and each file and directory below it once written. A repository
//! directory that existed before keeps its mode (it may be a shared parent); the backups in
//! it are private all the same.
//!
//! Object stores have no file modes: there the bucket's policy is the equivalent (block
//! public access, grant the backup role alone, encrypt at rest).

use std::io;
use std::path::Path;

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Creates `dir` and any missing parents, each new one `0700`.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => set_mode(d, 0o700)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes the file at `relative` under `base` `0600` and every directory between them `0700`.
pub(crate) fn make_private(base: &Path, relative: &str) -> io::Result<()> {
    let mut dir = base.to_path_buf();
    set_mode(&dir, 0o700)?;
    let parts: Vec<&str> = relative.split('/').collect();
    if let Some((file, dirs)) = parts.split_last() {
        for d in dirs {
            dir.push(d);
            set_mode(&dir, 0o700)?;
        }
        set_mode(&dir.join(file), 0o600)?;
    }
    Ok(())
}

/// Makes a restored file private (`0600`): restored configuration holds secrets.
pub fn make_file_private(path: &Path) -> io::Result<()> {
    set_mode(path, 0o600)
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_and_files_are_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        set_mode(&shared, 0o755).unwrap();
        let base = shared.join("a/b");
        create_private_dir(&base).unwrap();
        assert_eq!(mode(&shared), 0o755, "an existing parent keeps its mode");
        assert_eq!(mode(&shared.join("a")), 0o700);
        assert_eq!(mode(&base), 0o700);
        std::fs::create_dir_all(base.join("s/data")).unwrap();
        std::fs::write(base.join("s/data/f"), b"x").unwrap();
        set_mode(&base.join("s"), 0o755).unwrap();
        set_mode(&base.join("s/data/f"), 0o644).unwrap();
        make_private(&base, "s/data/f").unwrap();
        assert_eq!(mode(&base.join("s")), 0o700);
        assert_eq!(mode(&base.join("s/data")), 0o700);
        assert_eq!(mode(&base.join("s/data/f")), 0o600);
    }
}
