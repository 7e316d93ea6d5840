use super::*;
use crate::retry::Transience;
use std::path::PathBuf;

fn rejected(code: u16, message: &str) -> Error {
    Error::Rejected {
        what: "apply x".into(),
        code,
        reason: "Invalid".into(),
        message: message.into(),
        retry_after: None,
    }
}

fn kubeconfig_with_context(dir: &Path) -> PathBuf {
    let path = dir.join("one.kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: a\n  context: {cluster: a, user: a}\nusers:\n- name: a\n  user: {token: t}\n",
    )
    .unwrap();
    path
}

#[test]
fn classifies_transient_errors() {
    assert_eq!(
        rejected(429, "").transience(),
        Transience::Transient { retry_after: None }
    );
    assert_eq!(
        rejected(503, "").transience(),
        Transience::Transient { retry_after: None }
    );
    let mut throttled = rejected(429, "");
    if let Error::Rejected { retry_after, .. } = &mut throttled {
        *retry_after = Some(3);
    }
    assert_eq!(
        throttled.transience(),
        Transience::Transient {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert_eq!(rejected(422, "").transience(), Transience::Permanent);
    assert_eq!(rejected(404, "").transience(), Transience::Permanent);
}

#[test]
fn recognizes_immutable_field_errors() {
    let selector =
        "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: ...: field is immutable";
    assert!(rejected(422, selector).is_immutable());
    let sts = "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', ... are forbidden";
    assert!(rejected(422, sts).is_immutable());
    assert!(!rejected(422, "metadata.name: Invalid value").is_immutable());
    assert!(!rejected(409, "field is immutable").is_immutable());
}

#[tokio::test]
async fn a_broken_kubeconfig_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.kubeconfig");
    std::fs::write(&path, "clusters: [").unwrap();
    let err = Cluster::connect("r", &path, None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: cannot load kubeconfig", path.display())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let leaky = dir.path().join("leaky.kubeconfig");
    let text = "users:\n- name: a\n  user: {token: [\"hunter2-token\"}\n";
    std::fs::write(&leaky, text).unwrap();
    let err = Cluster::connect("r", &leaky, None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let context = Cluster::connect("r", &kubeconfig_with_context(dir.path()), Some("nope")).await;
    let err = context.err().unwrap().to_string();
    assert!(err.contains("nope"), "names the missing context: {err}");
    let missing = dir.path().join("missing");
    assert!(matches!(
        Cluster::connect("r", &missing, None).await,
        Err(Error::Kubeconfig { .. })
    ));
}
