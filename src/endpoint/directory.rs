//! Directory endpoints: a tree of YAML or JSON manifests, or a snapshot archive.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::archive;
use crate::snapshot::{Archived, RawObject};

use super::Error;

/// Everything read from a directory.
#[derive(Debug)]
pub struct Listing {
    /// The source name: a snapshot's recorded source, else the directory's absolute path.
    pub source: String,
    /// Names objects from this directory carried before: its own name, for a tree of
    /// manifests.
    pub aliases: Vec<String>,
    /// Every object found, `List`s expanded, in path order.
    pub objects: Vec<RawObject>,
}

/// Reads every `.yaml`, `.yml` and `.json` file below `dir`; hidden files and directories
/// and other extensions are ignored. When `dir` holds a snapshot manifest, its source name and
/// which Secrets it redacted come along.
pub fn read(dir: &Path) -> Result<Listing, Error> {
    let manifest = if dir.join(archive::MANIFEST).is_file() {
        Some(archive::read_manifest(dir).map_err(|e| Error::Archive(Box::new(e)))?)
    } else {
        None
    };
    let archived: HashMap<&str, Archived> = manifest
        .iter()
        .flat_map(|m| &m.objects)
        .map(|e| {
            (
                e.path.as_str(),
                Archived {
                    redacted: e.redacted,
                },
            )
        })
        .collect();

    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'));
    for file in walker {
        let file = file.map_err(|e| Error::Read {
            path: e.path().unwrap_or(dir).to_path_buf(),
            source: e.into(),
        })?;
        let path = file.path();
        if !file.file_type().is_file() || !is_manifest_file(path) {
            continue;
        }
        let relative = path
            .strip_prefix(dir)
            .expect("walkdir yields paths below its root")
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        if manifest.is_some() && relative == archive::MANIFEST {
            continue;
        }
        let archived = archived.get(relative.as_str()).cloned();
        files.push((file.into_path(), archived));
    }

    // Parsing dominates an offline diff: spread the files over the cores, keeping their order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(threads).max(1);
    let parsed: Vec<Result<Vec<RawObject>, Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|files| {
                scope.spawn(move || {
                    files
                        .iter()
                        .map(|(path, archived)| read_file(path, archived))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("parsing does not panic"))
            .collect()
    });
    let mut objects = Vec::new();
    for file in parsed {
        objects.extend(file?);
    }

    let (source, aliases) = match manifest {
        Some(m) => (m.source, m.aliases),
        // The path, not the bare name: two checkouts named `manifests` are two sources.
        None => {
            let path = dir
                .canonicalize()
                .map_or_else(|_| dir.display().to_string(), |p| p.display().to_string());
            (path, vec![dir_name(dir)])
        }
    };
    Ok(Listing {
        source,
        objects,
        aliases,
    })
}

/// Reads and parses one file into its objects, `List`s expanded.
fn read_file(path: &Path, archived: &Option<Archived>) -> Result<Vec<RawObject>, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    let mut objects = Vec::new();
    for value in parse_documents(path, &text)? {
        for value in expand_list(value) {
            objects.push(RawObject {
                value,
                origin: origin.clone(),
                archived: archived.clone(),
            });
        }
    }
    Ok(objects)
}

fn is_manifest_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The name of a directory as written, or of the directory it resolves to (for `.`).
pub(super) fn dir_name(dir: &Path) -> String {
    let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    named(dir)
        .or_else(|| dir.canonicalize().ok().as_deref().and_then(named))
        .unwrap_or_else(|| dir.display().to_string())
}

/// Parses every document of a file. Empty documents (`---` alone, comments) are skipped.
fn parse_documents(path: &Path, text: &str) -> Result<Vec<Value>, Error> {
    let invalid = |line: Option<usize>, message: String| Error::InvalidYaml {
        path: PathBuf::from(path),
        line,
        message,
    };
    if path.extension().is_some_and(|e| e == "json") {
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(Some(e.line()), e.to_string()))?;
        return Ok(vec![value]);
    }
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document)
            .map_err(|e| invalid(e.location().map(|l| l.line()), e.to_string()))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Expands `kind: List` (as `kubectl get -o yaml` writes it) and typed lists such as
/// `ConfigMapList` (as the API returns them, with items lacking `apiVersion` and `kind`).
fn expand_list(value: Value) -> Vec<Value> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(item_kind) = kind.strip_suffix("List") else {
        return vec![value];
    };
    let Some(Value::Array(items)) = value.get("items") else {
        return vec![value];
    };
    let api_version = value.get("apiVersion").cloned().unwrap_or(Value::Null);
    let item_kind = item_kind.to_string();
    items
        .iter()
        .cloned()
        .map(|mut item| {
            if let Some(map) = item.as_object_mut().filter(|_| !item_kind.is_empty()) {
                map.entry("kind")
                    .or_insert_with(|| item_kind.clone().into());
                map.entry("apiVersion")
                    .or_insert_with(|| api_version.clone());
            }
            item
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_multi_document_files_lists_and_json() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.yaml",
            "---\n# comment only\n---\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: a}\n---\nkind: Secret\napiVersion: v1\nmetadata: {name: b}\n",
        );
        write(
            dir.path(),
            "sub/list.yml",
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}\n",
        );
        write(
            dir.path(),
            "typed.json",
            r#"{"apiVersion": "v1", "kind": "ConfigMapList", "items": [{"metadata": {"name": "e"}}]}"#,
        );
        write(dir.path(), "notes.txt", "not: [yaml");
        write(dir.path(), ".hidden/x.yaml", "not: [yaml");
        let listing = read(dir.path()).unwrap();
        let names: Vec<_> = listing
            .objects
            .iter()
            .map(|o| o.value["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(listing.objects[4].value["kind"], "ConfigMap");
        assert_eq!(listing.objects[4].value["apiVersion"], "v1");
        assert!(listing.objects[2].origin.ends_with("list.yml"));
    }

    #[test]
    fn names_the_file_and_line_of_invalid_yaml() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ok.yaml", "kind: ConfigMap\n");
        write(
            dir.path(),
            "broken.yaml",
            "kind: ConfigMap\nmetadata:\n  name: [unclosed\n  other: 1\n",
        );
        let err = read(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broken.yaml:"), "{text}");
        assert!(
            matches!(
                err,
                Error::InvalidYaml {
                    line: Some(3..=4),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn names_the_file_of_invalid_json() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.json", "{\n\"kind\": }");
        let err = read(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidYaml { line: Some(2), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn names_a_tree_of_manifests_by_its_path_with_its_name_as_an_alias() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("staging");
        fs::create_dir(&named).unwrap();
        let listing = read(&named).unwrap();
        let path = named.canonicalize().unwrap().display().to_string();
        assert_eq!(listing.source, path);
        assert_eq!(listing.aliases, ["staging"]);
        // Two checkouts of the same name are two sources.
        let other = dir.path().join("elsewhere").join("staging");
        fs::create_dir_all(&other).unwrap();
        assert_ne!(read(&other).unwrap().source, listing.source);
    }
}
