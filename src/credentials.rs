//! Replica credentials as a cluster gives them: a kubeconfig for a ServiceAccount, with a
//! token minted by the TokenRequest API, and when tokens expire.
//!
//! A minted token is bound to its ServiceAccount: deleting (or re-creating) the account
//! revokes it, and it expires at the time the server chose. Whoever runs k8s-sync mints the
//! next one before then (the README gives the command and a schedule); the expiry is a gauge.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// A kubeconfig made for a ServiceAccount.
pub struct Minted {
    /// The kubeconfig, as YAML: the server and CA of the kubeconfig it was made with, and the
    /// token.
    pub kubeconfig: String,
    /// When the token expires, as the server says.
    pub expires: Option<jiff::Timestamp>,
}

/// Making a kubeconfig failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig it is made from cannot be read or lacks its context's cluster.
    #[error("{path}: {reason}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The server refused the TokenRequest or did not answer.
    #[error(transparent)]
    Token(#[from] crate::endpoint::cluster::Error),
    /// The server answered the TokenRequest without a token.
    #[error("token for service account {0}: the server sent none")]
    Empty(String),
}

/// Mints a token for ServiceAccount `namespace/name` valid for `duration` (the server may
/// shorten it) with the credentials of `admin` (a kubeconfig and context), and makes a
/// kubeconfig of it for the same server, the CA inlined.
pub async fn mint(
    admin: &Path,
    context: Option<&str>,
    namespace: &str,
    name: &str,
    duration: std::time::Duration,
) -> Result<Minted, Error> {
    let broken = |reason: String| Error::Kubeconfig {
        path: admin.to_path_buf(),
        reason,
    };
    let kubeconfig = Kubeconfig::read_from(admin).map_err(|e| broken(format!("{e}")))?;
    let context_name = context
        .map(str::to_string)
        .or_else(|| kubeconfig.current_context.clone())
        .ok_or_else(|| broken("no current context; name one with FILE#CONTEXT".into()))?;
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| broken(format!("no context {context_name:?}")))?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| broken(format!("no cluster {cluster_name:?}")))?;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| broken(format!("cluster {cluster_name:?} has no server")))?;
    let ca_data = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => Some(data.clone()),
        (None, Some(file)) => {
            let pem = std::fs::read(file).map_err(|e| broken(format!("{file}: {e}")))?;
            Some(base64::engine::general_purpose::STANDARD.encode(pem))
        }
        (None, None) => None,
    };

    let options = KubeConfigOptions {
        context: Some(context_name),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|e| broken(format!("{e}")))?;
    let client = kube::Client::try_from(config).map_err(|e| broken(format!("{e}")))?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: i64::try_from(duration.as_secs()).ok(),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let account = format!("{namespace}/{name}");
    let answer = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            let what = format!("token for service account {account}");
            crate::endpoint::cluster::Error::from_kube(what, e)
        })?;
    let status = answer.status.unwrap_or_default();
    let token = status
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or(Error::Empty(account))?;

    let user = format!("system:serviceaccount:{namespace}:{name}");
    let mut cluster_entry = json!({"server": server});
    if let Some(data) = ca_data {
        cluster_entry["certificate-authority-data"] = Value::String(data);
    }
    if cluster.insecure_skip_tls_verify == Some(true) {
        cluster_entry["insecure-skip-tls-verify"] = Value::Bool(true);
    }
    let document = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "k8s-sync",
        "clusters": [{"name": "k8s-sync", "cluster": cluster_entry}],
        "contexts": [{"name": "k8s-sync", "context": {"cluster": "k8s-sync", "user": user}}],
        "users": [{"name": user, "user": {"token": token}}],
    });
    let kubeconfig = serde_yaml::to_string(&document).expect("JSON values serialize as YAML");
    let expires = status
        .expiration_timestamp
        .map(|t| t.0)
        .or_else(|| token_expiry(&token));
    Ok(Minted {
        kubeconfig,
        expires,
    })
}

/// When a bearer token that is a JWT (as ServiceAccount tokens are) expires: its `exp` claim.
/// Reads the claim only; the signature is the server's business.
pub fn token_expiry(token: &str) -> Option<jiff::Timestamp> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    jiff::Timestamp::from_second(claims.get("exp")?.as_i64()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        let encode = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.signature",
            encode(br#"{"alg":"RS256"}"#),
            encode(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn reads_the_expiry_of_a_service_account_token() {
        let token = jwt(&json!({"exp": 1_900_000_000, "sub": "system:serviceaccount:a:b"}));
        assert_eq!(
            token_expiry(&token),
            Some(jiff::Timestamp::from_second(1_900_000_000).unwrap())
        );
    }

    #[test]
    fn a_token_that_is_not_a_jwt_has_no_known_expiry() {
        for token in ["static-token", "a.b.c", &jwt(&json!({"sub": "x"}))] {
            assert_eq!(token_expiry(token), None, "{token}");
        }
    }
}
