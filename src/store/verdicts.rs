//! Verdicts of the replicas' servers on suspected drift, one per object, kept for as long as the
//! desired change key and the live resourceVersion they were given for hold.

use rusqlite::{OptionalExtension, params};

use super::{Error, Store, now};

/// A verdict to record.
#[derive(Debug, Clone)]
pub struct VerdictRecord<'a> {
    /// The replica's name.
    pub replica: &'a str,
    /// The object's kind.
    pub kind: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The desired change key the server was asked about.
    pub desired_key: &'a str,
    /// The resourceVersion of the live object it was compared with.
    pub live_version: &'a str,
    /// The paths where the object would change (none: in sync). Key names, never values.
    pub paths: &'a [String],
}

/// A remembered verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The paths where the object would change; empty when it is in sync.
    pub paths: Vec<String>,
}

impl Store {
    /// Records a verdict, replacing the object's earlier one.
    pub fn record_verdict(&self, record: &VerdictRecord<'_>) -> Result<(), Error> {
        let paths = serde_json::to_string(record.paths).expect("paths serialize");
        self.lock()
            .prepare_cached(
                "INSERT INTO verdicts (replica, kind, namespace, name, desired_key, live_version,
                                       paths, checked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (replica, kind, namespace, name) DO UPDATE SET
                     desired_key = excluded.desired_key, live_version = excluded.live_version,
                     paths = excluded.paths, checked_at = excluded.checked_at",
            )?
            .execute(params![
                record.replica,
                record.kind,
                record.namespace,
                record.name,
                record.desired_key,
                record.live_version,
                paths,
                now()
            ])?;
        Ok(())
    }

    /// The verdict on an object, if one was given for this desired change key and this live
    /// resourceVersion.
    pub fn verdict(
        &self,
        replica: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        desired_key: &str,
        live_version: &str,
    ) -> Result<Option<Verdict>, Error> {
        let paths: Option<String> = self
            .lock()
            .prepare_cached(
                "SELECT paths FROM verdicts
                 WHERE replica = ?1 AND kind = ?2 AND namespace = ?3 AND name = ?4
                   AND desired_key = ?5 AND live_version = ?6",
            )?
            .query_row(
                params![replica, kind, namespace, name, desired_key, live_version],
                |row| row.get(0),
            )
            .optional()?;
        Ok(paths.map(|paths| Verdict {
            paths: serde_json::from_str(&paths).unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_holds_for_its_key_and_version_only() {
        let store = Store::in_memory().unwrap();
        let record = VerdictRecord {
            replica: "r",
            kind: "StatefulSet",
            namespace: "shop",
            name: "db",
            desired_key: "sha256:1",
            live_version: "10",
            paths: &[],
        };
        store.record_verdict(&record).unwrap();
        let lookup = |key, version| {
            store
                .verdict("r", "StatefulSet", "shop", "db", key, version)
                .unwrap()
        };
        assert_eq!(lookup("sha256:1", "10"), Some(Verdict { paths: vec![] }));
        assert_eq!(
            lookup("sha256:1", "11"),
            None,
            "the live object changed since"
        );
        assert_eq!(lookup("sha256:2", "10"), None, "the primary changed since");
        let drift = ["spec.replicas".to_string()];
        store
            .record_verdict(&VerdictRecord {
                live_version: "11",
                paths: &drift,
                ..record
            })
            .unwrap();
        assert_eq!(lookup("sha256:1", "10"), None, "one verdict per object");
        assert_eq!(lookup("sha256:1", "11").unwrap().paths, drift);
    }
}
