//! What a cluster serves, by API discovery (kube's discovery client): the aggregated form in
//! two requests where the server has it (Kubernetes 1.30 and later), else a request per group.

use kube::discovery::{Discovery, Scope, verbs};

use super::{Cluster, Error};
use crate::kinds::Served;

impl Cluster {
    /// Every resource the server serves at its group's preferred version (subresources aside).
    pub async fn discover(&self) -> Result<Vec<Served>, Error> {
        use std::sync::atomic::Ordering;
        self.requests.reads.fetch_add(2, Ordering::Relaxed);
        let discovery = match Discovery::new(self.client()).run_aggregated().await {
            Ok(discovery) => discovery,
            Err(_) => Discovery::new(self.client())
                .run()
                .await
                .map_err(|e| Error::from_kube("discover the served resources".into(), e))?,
        };
        let mut served = Vec::new();
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                let syncable = [verbs::LIST, verbs::WATCH, verbs::PATCH]
                    .iter()
                    .all(|verb| capabilities.supports_operation(verb));
                served.push(Served {
                    group: resource.group,
                    version: resource.version,
                    kind: resource.kind,
                    plural: resource.plural,
                    namespaced: capabilities.scope == Scope::Namespaced,
                    syncable,
                });
            }
        }
        Ok(served)
    }
}
