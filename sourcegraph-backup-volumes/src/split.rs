//! Splitting a volume into parts: subtrees bin-packed, in name order, up to a
//! target size, so parts can be archived and restored in parallel and a bad
//! part loses only its own subtrees.
//!
//! The split units are the top-level entries; a directory larger than the
//! target (gitserver keeps everything under `github.com/`) is split into its
//! children instead, recursively, and contributes only its own header entry.

use std::io;
use std::path::{Path, PathBuf};

/// Tar block size: every entry costs one header block plus its data rounded up.
const BLOCK: u64 = 512;

/// One archived subtree (or a lone directory header when `recursive` is false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// Path relative to the volume root; empty for the root itself.
    pub rel: PathBuf,
    /// Whether the directory's contents belong to this unit.
    pub recursive: bool,
    /// Estimated tar bytes.
    pub size: u64,
}

/// The units of one part, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartSpec {
    /// Position, from 0; names the artifact `part-NNNN.tar.zst`.
    pub index: usize,
    /// The subtrees archived in this part.
    pub units: Vec<Unit>,
    /// Estimated tar bytes.
    pub size: u64,
}

impl PartSpec {
    /// The artifact name of this part.
    pub fn artifact_name(&self) -> String {
        artifact_name(self.index)
    }
}

/// The artifact name of part `index`.
pub(crate) fn artifact_name(index: usize) -> String {
    format!("part-{index:04}.tar.zst")
}

/// Estimated tar size of a subtree (headers + data padded to blocks). Entries
/// that vanish while measured count as nothing; the archiver reports them.
pub(crate) fn tree_size(path: &Path) -> io::Result<u64> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = BLOCK;
    if meta.is_file() {
        return Ok(total + meta.len().div_ceil(BLOCK) * BLOCK);
    }
    if !meta.is_dir() {
        return Ok(total);
    }
    // An explicit stack: volumes can be deep.
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            total += BLOCK;
            if meta.is_file() {
                total += meta.len().div_ceil(BLOCK) * BLOCK;
            } else if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Entry names of a directory, sorted bytewise for a deterministic archive.
pub(crate) fn sorted_names(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort_unstable();
    Ok(names)
}

/// Splits the volume at `root` into parts of about `target` bytes each.
/// Part 0 always starts with the root directory's own header.
pub(crate) fn plan_parts(root: &Path, target: u64) -> io::Result<Vec<PartSpec>> {
    let target = target.max(BLOCK);
    let mut units = vec![Unit {
        rel: PathBuf::new(),
        recursive: false,
        size: BLOCK,
    }];
    split_dir(root, Path::new(""), target, &mut units)?;
    Ok(pack(units, target))
}

fn split_dir(root: &Path, rel: &Path, target: u64, units: &mut Vec<Unit>) -> io::Result<()> {
    let names = match sorted_names(&root.join(rel)) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names {
        let child = rel.join(&name);
        let abs = root.join(&child);
        let size = tree_size(&abs)?;
        let is_dir = std::fs::symlink_metadata(&abs).is_ok_and(|m| m.is_dir());
        if is_dir && size > target {
            units.push(Unit {
                rel: child.clone(),
                recursive: false,
                size: BLOCK,
            });
            split_dir(root, &child, target, units)?;
        } else {
            units.push(Unit {
                rel: child,
                recursive: true,
                size,
            });
        }
    }
    Ok(())
}

/// Next-fit in name order: parts stay contiguous ranges of the tree, and a
/// unit larger than the target gets a part of its own.
fn pack(units: Vec<Unit>, target: u64) -> Vec<PartSpec> {
    let mut parts: Vec<PartSpec> = Vec::new();
    let mut current = PartSpec {
        index: 0,
        units: Vec::new(),
        size: 0,
    };
    for unit in units {
        // Lone directory headers are tiny: never let them open a part by themselves.
        if !current.units.is_empty() && current.size + unit.size > target && unit.recursive {
            let index = current.index + 1;
            parts.push(std::mem::replace(
                &mut current,
                PartSpec {
                    index,
                    units: Vec::new(),
                    size: 0,
                },
            ));
        }
        current.size += unit.size;
        current.units.push(unit);
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, size: u64) -> Unit {
        Unit {
            rel: PathBuf::from(name),
            recursive: true,
            size,
        }
    }

    #[test]
    fn packs_in_order_and_isolates_huge_units() {
        let parts = pack(
            vec![
                unit("a", 400),
                unit("b", 500),
                unit("c", 5000),
                unit("d", 100),
                unit("e", 100),
            ],
            1000,
        );
        let names: Vec<Vec<String>> = parts
            .iter()
            .map(|p| p.units.iter().map(|u| u.rel.display().to_string()).collect())
            .collect();
        assert_eq!(names, vec![vec!["a", "b"], vec!["c"], vec!["d", "e"]]);
        assert_eq!(parts[2].index, 2);
        assert_eq!(parts[1].artifact_name(), "part-0001.tar.zst");
    }
}
