//! The schema folder: the only place a "$ref" may read from.
//!
//! Every path is resolved to its real path (symlinks followed) and must stay inside the
//! folder's real path, so neither a symlinked file nor a symlinked directory lets a schema
//! read a file it was not given. Only regular files are read (a FIFO could block the load
//! for ever, a device never end), each at most MAX_FILE_BYTES, through the strict parser.
//! Two files declaring one "$id" are refused, naming both: which one a "$ref" meant would
//! depend on the order of a directory listing.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jsonschema::{Retrieve, Uri};
use serde_json::Value;

pub const MAX_FILES: usize = 1000;
pub const MAX_FILE_BYTES: u64 = 4 << 20;
const MAX_FOLDER_DEPTH: usize = 16;
// Opening a FIFO for reading without it would wait for a writer.
const O_NONBLOCK: i32 = 0o4000;

/// Reads one schema file: a regular file of at most MAX_FILE_BYTES, strict JSON.
pub fn read_json_file(path: &Path) -> Result<Value, String> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{}: not a regular file (a FIFO, socket or device in the schema folder is never read)",
            path.display()
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("{}: larger than {} bytes", path.display(), MAX_FILE_BYTES));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{}: larger than {} bytes", path.display(), MAX_FILE_BYTES));
    }
    crate::json::parse(&bytes).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// `rel` under `dir`, by real path, refused if it leaves `dir`'s real path.
pub fn real_path_inside(dir: &Path, rel: &str) -> Result<PathBuf, String> {
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(rel).canonicalize().map_err(|e| format!("{rel}: {e}"))?;
    if !path.starts_with(&dir) {
        return Err(format!("{} is outside the schema folder {}", path.display(), dir.display()));
    }
    Ok(path)
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves "$ref" URIs: the "$id" of a file in the folder, a file of the folder by its
/// file:// URI, or an explicit URL prefix mapped to a folder (the conformance suite's).
pub struct Resolver {
    pub root_dir: Option<PathBuf>,
    pub ids: HashMap<String, Value>,
    pub url_map: Vec<(String, PathBuf)>,
}

impl Resolver {
    /// The document `uri` names (its fragment ignored).
    pub fn fetch(&self, uri: &str) -> Result<Value, String> {
        let s = uri.split('#').next().unwrap_or(uri);
        if let Some(v) = self.ids.get(s) {
            return Ok(v.clone());
        }
        for (prefix, dir) in &self.url_map {
            if let Some(rest) = s.strip_prefix(prefix.as_str()) {
                return read_json_file(&real_path_inside(dir, &percent_decode(rest))?);
            }
        }
        if let (Some(root), Some(path)) = (&self.root_dir, s.strip_prefix("file://")) {
            let path = PathBuf::from(percent_decode(path));
            let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
            let rel = path.strip_prefix(&root).map_err(|_| {
                format!("$ref {s} is outside the schema folder {}", root.display())
            })?;
            return read_json_file(&real_path_inside(&root, &rel.to_string_lossy())?);
        }
        Err(format!(
            "$ref {s} cannot be resolved: only files in the schema folder, or the $id of one, \
             are allowed (cachecar never fetches schemas over the network)"
        ))
    }
}

impl Retrieve for Resolver {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.fetch(uri.as_str()).map_err(Into::into)
    }
}

/// The "$id" of every JSON file under `root` (Kubernetes' "..data" links skipped; each real
/// file once). A file that is not JSON is left out here: it fails where a "$ref" uses it.
pub fn index_ids(root: &Path) -> Result<HashMap<String, Value>, String> {
    let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
    let mut ids = HashMap::new();
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    let mut seen = HashSet::new();
    walk(&root, &root, 0, &mut seen, &mut |path| {
        let Ok(v) = read_json_file(path) else { return Ok(()) };
        let id = v.get("$id").or_else(|| v.get("id")).and_then(Value::as_str);
        if let Some(id) = id {
            let id = id.trim_end_matches('#').to_string();
            if let Some(other) = owners.get(&id) {
                return Err(format!(
                    "$id {id} is declared by both {} and {}; a $ref to it would be ambiguous",
                    other.display(),
                    path.display()
                ));
            }
            owners.insert(id.clone(), path.to_path_buf());
            ids.insert(id, v);
        }
        Ok(())
    })?;
    Ok(ids)
}

/// Calls `visit` with the real path of every *.json file under `dir` that stays inside
/// `root`, each once, in name order. A *.json that is not a regular file, or is too large,
/// is an error naming it.
pub fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    seen: &mut HashSet<PathBuf>,
    visit: &mut dyn FnMut(&Path) -> Result<(), String>,
) -> Result<(), String> {
    if depth > MAX_FOLDER_DEPTH {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("..") || seen.len() >= MAX_FILES {
            continue;
        }
        let Ok(real) = path.canonicalize() else { continue };  // a dangling link
        if !real.starts_with(root) || !seen.insert(real.clone()) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&real) else { continue };
        if meta.is_dir() {
            walk(root, &real, depth + 1, seen, visit)?;
        } else if name.ends_with(".json") {
            if !meta.is_file() {
                return Err(format!(
                    "{}: not a regular file (a FIFO, socket or device in the schema folder is \
                     refused)",
                    path.display()
                ));
            }
            if meta.len() > MAX_FILE_BYTES {
                return Err(format!("{}: larger than {} bytes", path.display(), MAX_FILE_BYTES));
            }
            visit(&real)?;
        }
    }
    Ok(())
}
