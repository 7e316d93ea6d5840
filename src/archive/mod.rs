//! The snapshot archive: one normalized YAML file per object and a manifest.
//!
//! ```text
//! DIR/manifest.json                      source, time, tool version, root hash, entries
//! DIR/<namespace>/<resource>/<name>.yaml  resource: `plural` in the core group, else
//!                                         `plural.group` (`deployments.apps`)
//! DIR/_cluster/<resource>/<name>.yaml     cluster-scoped objects (CRDs)
//! ```
//!
//! Format v1 (before custom resources) named directories by the plural alone; its archives are
//! still read and verified.
//!
//! Each manifest entry holds the object's change key (of the unredacted object; none for
//! redacted Secrets) and the sha256 of its file. The root hash is the sha256 over `path \t change key \t file sha256 \n`
//! lines in path order, so it changes when any object does.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kinds;
use crate::normalize::{self, ChangeKey};
use crate::secret;
use crate::snapshot::{ObjectRef, Snapshot};

/// The manifest's file name at the root of an archive.
pub const MANIFEST: &str = "manifest.json";
/// The format tag written into every manifest.
pub const FORMAT: &str = "k8s-sync-snapshot/v2";
/// The formats read: this one, and v1 (directories by plural, no `apiVersion` in entries).
pub const READ_FORMATS: [&str; 2] = [FORMAT, "k8s-sync-snapshot/v1"];
/// The directory of cluster-scoped objects: no namespace can be called that.
pub const CLUSTER_SCOPED: &str = "_cluster";

/// Whether Secret values are in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretData {
    /// Values replaced by a placeholder.
    Redacted,
    /// Values written as they are (`--include-secret-data`).
    Included,
}

/// The manifest of an archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The source the snapshot was taken from.
    pub source: String,
    /// Other names the source's objects carry (see [`Snapshot::aliases`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// When, as an RFC 3339 UTC timestamp.
    pub created_at: String,
    /// The k8s-sync version that wrote it.
    pub tool_version: String,
    /// Whether Secret values were written.
    pub secret_data: SecretData,
    /// The root hash over every entry.
    pub root_hash: String,
    /// One entry per object, in path order.
    pub objects: Vec<ManifestEntry>,
}

/// One object in a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path of its file, relative to the archive root, `/`-separated.
    pub path: String,
    /// Its kind: the `kind` field.
    pub kind: String,
    /// Its `apiVersion` (format v2; v1 entries are of the five kinds it knew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Its resource, `plural` or `plural.group` (format v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its change key, computed before any redaction. Absent for redacted Secrets: a hash of
    /// the values would let a weak one be guessed offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    /// sha256 (hex) of the file's bytes.
    pub sha256: String,
    /// Whether Secret values were redacted in the file.
    #[serde(default)]
    pub redacted: bool,
}

/// An archive that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {action}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The output directory already holds files.
    #[error("{0}: directory is not empty; choose a new one")]
    NotEmpty(PathBuf),
    /// The manifest is missing or malformed.
    #[error("{path}: not a k8s-sync snapshot manifest: {reason}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The relative file path of an object in an archive.
pub fn object_path(reference: &ObjectRef) -> String {
    let namespace = if reference.kind.namespaced {
        reference.namespace.as_str()
    } else {
        CLUSTER_SCOPED
    };
    format!(
        "{namespace}/{}/{}.yaml",
        reference.kind.resource(),
        reference.name
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn root_hash(entries: &[ManifestEntry]) -> String {
    let mut text = String::new();
    for e in entries {
        let key = e.change_key.as_deref().unwrap_or("-");
        text.push_str(&format!("{}\t{key}\t{}\n", e.path, e.sha256));
    }
    ChangeKey::of_bytes(text.as_bytes()).to_string()
}

/// Renders a snapshot into files (relative path, bytes) and the manifest describing them,
/// without touching the disk.
pub fn render(
    snapshot: &Snapshot,
    secret_data: SecretData,
    created_at: &str,
) -> (Vec<(String, String)>, Manifest) {
    let mut files = Vec::with_capacity(snapshot.objects.len());
    let mut entries = Vec::with_capacity(snapshot.objects.len());
    for (reference, entry) in &snapshot.objects {
        let mut object = entry.object();
        let redact =
            secret::is_secret(&object) && (secret_data == SecretData::Redacted || entry.redacted);
        if redact {
            secret::redact(&mut object);
        }
        let text = normalize::to_yaml(&object);
        let path = object_path(reference);
        entries.push(ManifestEntry {
            path: path.clone(),
            kind: reference.kind.kind.to_string(),
            api_version: Some(reference.kind.api_version()),
            resource: Some(reference.kind.resource()),
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            change_key: (!redact).then(|| entry.change_key.to_string()),
            sha256: sha256_hex(text.as_bytes()),
            redacted: redact,
        });
        files.push((path, text));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        format: FORMAT.into(),
        source: snapshot.source.clone(),
        aliases: snapshot.aliases.clone(),
        created_at: created_at.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        secret_data,
        root_hash: root_hash(&entries),
        objects: entries,
    };
    (files, manifest)
}

/// Writes a snapshot to `dir`, which must not exist or be empty. The manifest is written last,
/// so an interrupted write never looks like a complete archive. An archive holding Secret
/// values is readable by its owner only: directories 0700, files 0600, set as they are made.
pub fn write(
    snapshot: &Snapshot,
    dir: &Path,
    secret_data: SecretData,
    created_at: &str,
) -> Result<Manifest, Error> {
    if dir.exists() {
        let mut entries = fs::read_dir(dir).map_err(io_error(dir, "cannot read directory"))?;
        if entries.next().is_some() {
            return Err(Error::NotEmpty(dir.to_path_buf()));
        }
    }
    let private = secret_data == SecretData::Included;
    let (files, manifest) = render(snapshot, secret_data, created_at);
    create_dir(dir, private)?;
    for (relative, text) in &files {
        let path = dir.join(relative);
        let parent = path.parent().expect("object paths have parents");
        create_dir(parent, private)?;
        write_file(&path, text.as_bytes(), private)?;
    }
    let path = dir.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    write_file(&path, (json + "\n").as_bytes(), private)?;
    Ok(manifest)
}

fn create_dir(dir: &Path, private: bool) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    if private {
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_error(dir, "cannot create directory"))?;
    if private {
        // An existing (empty) directory keeps the mode it had: narrow it too.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error(dir, "cannot restrict directory"))?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(io_error(path, "cannot write file"))?;
    file.write_all(bytes)
        .map_err(io_error(path, "cannot write file"))
}

/// Writes `snapshot` to `root/<UTC timestamp>/` (Secret values redacted), unless the newest
/// snapshot already under `root` has the same root hash. Returns the new directory, if any.
pub fn write_if_changed(snapshot: &Snapshot, root: &Path) -> Result<Option<PathBuf>, Error> {
    let now = jiff::Timestamp::now();
    let (_, manifest) = render(snapshot, SecretData::Redacted, "");
    let unchanged = newest(root)?
        .is_some_and(|dir| read_manifest(&dir).is_ok_and(|m| m.root_hash == manifest.root_hash));
    if unchanged {
        return Ok(None);
    }
    // Sortable and free of characters some filesystems refuse (`:`).
    let name = now.strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
    // Two archives within one millisecond get a suffix, which still sorts after the first.
    let dir = std::iter::once(root.join(&name))
        .chain((1..).map(|n| root.join(format!("{name}-{n}"))))
        .find(|dir| !dir.exists())
        .expect("an unused name");
    write(snapshot, &dir, SecretData::Redacted, &now.to_string())?;
    Ok(Some(dir))
}

/// The newest snapshot directory under `root` (names sort by time), if any.
fn newest(root: &Path) -> Result<Option<PathBuf>, Error> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(root, "cannot read directory")(e)),
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(MANIFEST).is_file())
        .map(|e| e.path())
        .collect();
    names.sort();
    Ok(names.pop())
}

/// Reads and checks the shape of an archive's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(io_error(&path, "cannot read manifest"))?;
    let bad = |reason: String| Error::BadManifest {
        path: path.clone(),
        reason,
    };
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if !READ_FORMATS.contains(&manifest.format.as_str()) {
        return Err(bad(format!(
            "format {:?}, expected {}",
            manifest.format,
            READ_FORMATS.map(|f| format!("{f:?}")).join(" or ")
        )));
    }
    Ok(manifest)
}

/// A path inside an archive that is relative and cannot climb out of it.
fn is_contained(relative: &str) -> bool {
    let path = Path::new(relative);
    !relative.is_empty()
        && path.components().all(
            |c| matches!(c, Component::Normal(part) if !part.to_string_lossy().starts_with('.')),
        )
}

/// One way an archive differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", content = "path", rename_all = "snake_case")]
pub enum Finding {
    /// A file's bytes (or, for unredacted objects, its content's change key) do not match.
    Changed(String),
    /// A file the manifest lists is gone.
    Removed(String),
    /// A file the manifest does not list.
    Added(String),
    /// The manifest's root hash does not match its entries.
    RootHash(String),
    /// An entry names a path outside the archive.
    UnsafePath(String),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Changed(p) => write!(f, "changed: {p}"),
            Finding::Removed(p) => write!(f, "removed: {p}"),
            Finding::Added(p) => write!(f, "added: {p}"),
            Finding::RootHash(p) => write!(f, "root hash does not match the entries of {p}"),
            Finding::UnsafePath(p) => write!(f, "manifest entry points outside the archive: {p}"),
        }
    }
}

/// Checks every file of an archive against its manifest. An empty list means intact.
pub fn verify(dir: &Path) -> Result<(Manifest, Vec<Finding>), Error> {
    let manifest = read_manifest(dir)?;
    let mut findings = Vec::new();
    if root_hash(&manifest.objects) != manifest.root_hash {
        findings.push(Finding::RootHash(MANIFEST.into()));
    }
    let mut listed = BTreeSet::new();
    for entry in &manifest.objects {
        if !is_contained(&entry.path) {
            findings.push(Finding::UnsafePath(entry.path.clone()));
            continue;
        }
        listed.insert(entry.path.clone());
        let path = dir.join(&entry.path);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                findings.push(Finding::Removed(entry.path.clone()));
                continue;
            }
            Err(e) => return Err(io_error(&path, "cannot read file")(e)),
        };
        if sha256_hex(&bytes) != entry.sha256 || !content_matches(entry, &bytes) {
            findings.push(Finding::Changed(entry.path.clone()));
        }
    }
    for file in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let file = file.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::Io {
                path,
                action: "cannot list directory",
                source: e.into(),
            }
        })?;
        if file.file_type().is_dir() {
            continue;
        }
        let relative = file
            .path()
            .strip_prefix(dir)
            .expect("walkdir yields paths below its root")
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        if relative != MANIFEST && !listed.contains(&relative) {
            findings.push(Finding::Added(relative));
        }
    }
    Ok((manifest, findings))
}

/// For an unredacted entry, the file's normalized content must still have its change key: an
/// edit that also rewrote the manifest's file hash is caught here.
fn content_matches(entry: &ManifestEntry, bytes: &[u8]) -> bool {
    let Some(change_key) = entry.change_key.as_deref().filter(|_| !entry.redacted) else {
        return true;
    };
    let Ok(mut value) = serde_yaml::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
    if entry
        .api_version
        .as_ref()
        .is_some_and(|a| *a != api_version)
    {
        return false;
    }
    let Some(kind) = kinds::by_type(&api_version, &entry.kind).or_else(|| entry_kind(entry)) else {
        return false;
    };
    normalize::normalize(&mut value, kind);
    ChangeKey::of(&value).as_str() == change_key
}

/// The kind a v2 entry names, registered: what a process that never met the kind (a custom
/// resource) needs to normalize its object.
fn entry_kind(entry: &ManifestEntry) -> Option<&'static kinds::Kind> {
    let api_version = entry.api_version.as_deref()?;
    let (group, version) = kinds::split_api_version(api_version);
    let resource = entry.resource.as_deref()?;
    let plural = resource
        .split_once('.')
        .map_or(resource, |(plural, _)| plural);
    Some(kinds::register(&kinds::Served {
        group: group.into(),
        version: version.into(),
        kind: entry.kind.clone(),
        plural: plural.into(),
        namespaced: !entry.namespace.is_empty(),
        syncable: true,
    }))
}

#[cfg(test)]
mod tests;
