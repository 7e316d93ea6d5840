//! The listeners of `serve` and `watch`: the API on `--listen`, and `/metrics`, `/healthz`
//! and `/readyz` on `--metrics-listen` when given. Also where the API's first user and its
//! authenticator are made, shared by both commands.

use std::sync::Arc;

use anyhow::Context as _;
use k8s_sync::accounts::Accounts;
use k8s_sync::api::{Api, Authenticator, Server, auth};

use crate::cli::ServerArgs;

/// The running listeners.
pub struct Listeners {
    api: Server,
    metrics: Option<Server>,
}

impl Listeners {
    /// Starts the listeners for `api`. With `retry_bind` (`watch`), an address that cannot be
    /// bound is tried again in the background while the process goes on; otherwise
    /// (`serve`, whose only work is the API) it is an error.
    pub async fn start(
        args: &ServerArgs,
        api: Arc<Api>,
        retry_bind: bool,
    ) -> anyhow::Result<Listeners> {
        let main = Server::start(args.listen, args.options(), api.clone(), retry_bind)
            .await
            .context("the HTTP API")?;
        let metrics = match args.metrics_options() {
            None => None,
            Some((listen, options)) => Some(
                Server::start(listen, options, api, retry_bind)
                    .await
                    .context("the metrics listener")?,
            ),
        };
        Ok(Listeners { api: main, metrics })
    }

    /// Stops them, letting the requests in flight finish.
    pub async fn shutdown(self) {
        let metrics = async {
            if let Some(metrics) = self.metrics {
                metrics.shutdown().await;
            }
        };
        tokio::join!(self.api.shutdown(), metrics);
    }
}

/// Adds the first user from `K8S_SYNC_ADMIN_PASSWORD` when `accounts` have none.
pub async fn first_user(accounts: Arc<dyn Accounts>) -> anyhow::Result<()> {
    let cost = auth::bcrypt_cost().map_err(anyhow::Error::msg)?;
    // bcrypt, and accounts on a cluster, block.
    tokio::task::spawn_blocking(move || auth::create_first_user(accounts.as_ref(), cost))
        .await
        .context("adding the first user")??;
    Ok(())
}

/// The API's authenticator.
pub async fn authenticator(token_ttl: std::time::Duration) -> anyhow::Result<Authenticator> {
    let cost = auth::bcrypt_cost().map_err(anyhow::Error::msg)?;
    // Preparing the dummy hash that evens out login times costs a bcrypt run.
    tokio::task::spawn_blocking(move || Authenticator::new(cost, token_ttl))
        .await
        .context("preparing password checks")?
        .context("preparing password checks")
}
