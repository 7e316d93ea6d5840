use super::*;
use crate::scope::Scope;
use crate::snapshot::RawObject;
use serde_json::json;

fn snapshot() -> Snapshot {
    let objects = [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}, "data": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": "aHVudGVyMg=="}}),
    ];
    let raw = objects.into_iter().map(|value| RawObject {
        value,
        origin: "t".into(),
        archived: None,
    });
    Snapshot::build("primary", raw, &Scope::default()).unwrap()
}

#[test]
fn writes_redacted_files_and_a_verifiable_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        &snapshot(),
        dir.path(),
        SecretData::Redacted,
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
    assert_eq!(manifest.objects.len(), 2);
    let secret = fs::read_to_string(dir.path().join("shop/secrets/db.yaml")).unwrap();
    assert!(
        secret.contains(secret::REDACTED) && !secret.contains("aHVudGVyMg=="),
        "{secret}"
    );
    let (_, findings) = verify(dir.path()).unwrap();
    assert_eq!(findings, []);
}

#[test]
fn includes_secret_data_only_when_asked_and_then_for_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("with-secrets");
    write(&snapshot(), &dir, SecretData::Included, "t").unwrap();
    let secret = fs::read_to_string(dir.join("shop/secrets/db.yaml")).unwrap();
    assert!(secret.contains("aHVudGVyMg=="));
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for entry in walkdir::WalkDir::new(&dir) {
        let entry = entry.unwrap();
        let expected = if entry.file_type().is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode(entry.path()), expected, "{}", entry.path().display());
    }
    // Redacted archives keep the usual modes.
    let redacted = root.path().join("redacted");
    write(&snapshot(), &redacted, SecretData::Redacted, "t").unwrap();
    assert_ne!(mode(&redacted.join(MANIFEST)), 0o600);
}

#[test]
fn refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("x"), "").unwrap();
    let err = write(&snapshot(), dir.path(), SecretData::Redacted, "t").unwrap_err();
    assert!(matches!(err, Error::NotEmpty(_)));
}

#[test]
fn verify_names_changed_added_and_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    write(&snapshot(), dir.path(), SecretData::Redacted, "t").unwrap();
    fs::write(
        dir.path().join("shop/configmaps/a.yaml"),
        "tampered: true\n",
    )
    .unwrap();
    fs::remove_file(dir.path().join("shop/secrets/db.yaml")).unwrap();
    fs::write(dir.path().join("shop/extra.yaml"), "x: 1\n").unwrap();
    let (_, findings) = verify(dir.path()).unwrap();
    assert_eq!(
        findings,
        [
            Finding::Changed("shop/configmaps/a.yaml".into()),
            Finding::Removed("shop/secrets/db.yaml".into()),
            Finding::Added("shop/extra.yaml".into()),
        ]
    );
}

#[test]
fn verify_catches_an_edit_that_also_rewrote_the_file_hash() {
    let dir = tempfile::tempdir().unwrap();
    write(&snapshot(), dir.path(), SecretData::Redacted, "t").unwrap();
    let file = dir.path().join("shop/configmaps/a.yaml");
    let edited = fs::read_to_string(&file).unwrap().replace("k: v", "k: w");
    fs::write(&file, &edited).unwrap();
    let mut manifest = read_manifest(dir.path()).unwrap();
    manifest.objects[0].sha256 = sha256_hex(edited.as_bytes());
    manifest.root_hash = root_hash(&manifest.objects);
    fs::write(
        dir.path().join(MANIFEST),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();
    let (_, findings) = verify(dir.path()).unwrap();
    assert_eq!(
        findings,
        [Finding::Changed("shop/configmaps/a.yaml".into())]
    );
}

#[test]
fn verify_rejects_manifest_paths_outside_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    write(&snapshot(), dir.path(), SecretData::Redacted, "t").unwrap();
    let mut manifest = read_manifest(dir.path()).unwrap();
    manifest.objects[0].path = "../../etc/passwd".into();
    manifest.objects[1].path = "/etc/passwd".into();
    manifest.root_hash = root_hash(&manifest.objects);
    fs::write(
        dir.path().join(MANIFEST),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();
    let (_, findings) = verify(dir.path()).unwrap();
    assert!(findings.contains(&Finding::UnsafePath("../../etc/passwd".into())));
    assert!(findings.contains(&Finding::UnsafePath("/etc/passwd".into())));
}

#[test]
fn archives_only_when_the_root_hash_changes() {
    let root = tempfile::tempdir().unwrap();
    let first = write_if_changed(&snapshot(), root.path())
        .unwrap()
        .expect("first one is written");
    assert!(first.join(MANIFEST).is_file());
    assert_eq!(write_if_changed(&snapshot(), root.path()).unwrap(), None);
    let mut changed = snapshot();
    changed.objects.values_mut().next().unwrap().change_key = ChangeKey::of_bytes(b"other");
    let second = write_if_changed(&changed, root.path())
        .unwrap()
        .expect("a change is written");
    assert!(second > first, "{second:?} sorts after {first:?}");
}

#[test]
fn verify_reports_a_missing_manifest_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(verify(dir.path()), Err(Error::Io { .. })));
    fs::write(dir.path().join(MANIFEST), "{}").unwrap();
    assert!(matches!(verify(dir.path()), Err(Error::BadManifest { .. })));
}
