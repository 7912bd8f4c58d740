//! Listing test data directories, shared by the engine, fault and race tests.

use std::path::{Path, PathBuf};

/// The names in a directory, sorted.
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every path under `root` (files and directories), relative, sorted.
pub(crate) fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

/// The attempts the filesystem sink keeps in an upload's directory: each
/// file in `parts/`, and each claim (`claims/{index}`, ten digits) of an
/// attempt written in place into `data`.
pub(crate) fn stored_attempts(upload: &Path) -> usize {
    let names = |sub: &str| -> Vec<String> {
        std::fs::read_dir(upload.join(sub)).map_or(Vec::new(), |entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
    };
    let claims = names("claims")
        .into_iter()
        .filter(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()))
        .count();
    names("parts").len() + claims
}
