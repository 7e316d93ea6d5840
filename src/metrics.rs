//! Prometheus metrics, all in one struct registered once. Every pass fills them in, whatever
//! command runs it; `serve` and `watch` export them at `/metrics`.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::endpoint::cluster::Requests;
use crate::report::Report;

/// The metrics of one k8s-sync process.
pub struct Metrics {
    registry: Registry,
    /// Jobs ended, by replica, kind, action and result (`succeeded`/`failed`).
    pub jobs: IntCounterVec,
    /// Time to apply one change, by replica.
    pub apply_seconds: HistogramVec,
    /// Time of a whole pass over every replica.
    pub pass_seconds: Histogram,
    /// Objects out of step now, by replica.
    pub drifted: IntGaugeVec,
    /// Whether the replica answers (1) or not (0).
    pub reachable: IntGaugeVec,
    /// Whether the primary answers and its state is listed in full (1) or not (0).
    pub primary_reachable: IntGauge,
    /// Whether this copy leads (1) and may write, or not (0); 1 without an election.
    pub leader: IntGauge,
    /// Unix time of the last full pass that left the replica with no failure.
    pub last_success: IntGaugeVec,
    /// Prunes held over `--max-prune`, by replica.
    pub prunes_held: IntGaugeVec,
    /// Prunes waiting for `--prune-delay`, by replica.
    pub prunes_delayed: IntGaugeVec,
    /// Age of the oldest change not yet applied to the replica, in seconds.
    pub replication_lag: GaugeVec,
    /// Seconds until the replica's credentials (a ServiceAccount token) expire; negative once
    /// expired; absent when unknown.
    pub credentials_expiry: GaugeVec,
    /// Changes waiting in watch mode's queue.
    pub queue_depth: IntGauge,
    /// Watch events seen on the primary, by kind and type.
    pub watch_events: IntCounterVec,
    /// Whether each watcher (`cluster/kind`) runs (1) or is starting or recovering (0).
    pub watchers: IntGaugeVec,
    /// Time from a primary event to the replica write that carried it, by replica.
    pub propagation_seconds: HistogramVec,
    /// HTTP API requests, by route pattern, method and status code.
    pub http_requests: IntCounterVec,
    /// Time to answer an HTTP API request, by route pattern.
    pub http_seconds: HistogramVec,
    /// Whether a listener (`api`, `metrics`) is bound and accepting (1) or not (0).
    pub http_listening: IntGaugeVec,
    /// Failures to bind or accept, by listener.
    pub http_listener_errors: IntCounterVec,
    /// Connections open now, by listener.
    pub http_connections: IntGaugeVec,
    /// Connections closed by the server before an answer, by listener and reason
    /// (`evicted`: the oldest of those still sending a request, to make room at
    /// `--max-connections`; `timeout`: headers or body not sent in time).
    pub http_connections_closed: IntCounterVec,
    /// Requests sent to each cluster, by cluster and type (`read`, `write`).
    cluster_requests: IntCounterVec,
    /// The clusters whose request counts [`Metrics::render`] reports.
    tracked: Mutex<Vec<(String, Arc<Requests>)>>,
    /// Run before each rendering, so that gauges whose truth changes with time alone (a lag)
    /// say what is true at the scrape.
    refreshers: Mutex<Vec<Refresher>>,
}

/// Brings some gauges up to date; see [`Metrics::refresh_with`].
pub type Refresher = Box<dyn Fn(&Metrics) + Send + Sync>;

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let opts = HistogramOpts::new(name, help).buckets(buckets);
            let metric = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let latency = prometheus::exponential_buckets(0.005, 2.0, 12).expect("valid buckets");
        let jobs = counter(
            "k8s_sync_jobs_total",
            "Jobs ended, by replica, kind, action and result.",
            &["replica", "kind", "action", "result"],
        );
        let apply_seconds = histogram(
            "k8s_sync_apply_duration_seconds",
            "Time to apply one change to a replica, retries included.",
            &["replica"],
            latency.clone(),
        );
        let pass_seconds = histogram(
            "k8s_sync_pass_duration_seconds",
            "Time of a whole pass over every replica.",
            &[],
            prometheus::exponential_buckets(0.05, 2.0, 12).expect("valid buckets"),
        )
        .with_label_values::<&str>(&[]);
        let http_listening = gauge(
            "k8s_sync_http_listening",
            "Whether the listener is bound and accepting connections (1) or not (0).",
            &["listener"],
        );
        let http_listener_errors = counter(
            "k8s_sync_http_listener_errors_total",
            "Failures to bind the listener or to accept a connection.",
            &["listener"],
        );
        let http_connections = gauge(
            "k8s_sync_http_connections",
            "HTTP connections open now.",
            &["listener"],
        );
        let http_connections_closed = counter(
            "k8s_sync_http_connections_closed_total",
            "Connections the server closed before answering: evicted at --max-connections, or timed out.",
            &["listener", "reason"],
        );
        let drifted = gauge(
            "k8s_sync_drifted_objects",
            "Objects out of step with the primary at the last pass.",
            &["replica"],
        );
        let reachable = gauge(
            "k8s_sync_replica_reachable",
            "Whether the replica could be read at the last pass.",
            &["replica"],
        );
        let last_success = gauge(
            "k8s_sync_last_successful_pass_timestamp_seconds",
            "Unix time of the last full pass that applied everything to the replica.",
            &["replica"],
        );
        let primary_reachable = gauge(
            "k8s_sync_primary_reachable",
            "Whether the primary answers and its state is listed in full (1) or not (0).",
            &[],
        )
        .with_label_values::<&str>(&[]);
        let leader = gauge(
            "k8s_sync_leader",
            "Whether this copy holds the lease and may write (1) or not (0); 1 without an election.",
            &[],
        )
        .with_label_values::<&str>(&[]);
        // Without an election the one copy leads; watch mode keeps it true from then on.
        leader.set(1);
        let prunes_held = gauge(
            "k8s_sync_prunes_held",
            "Prunes held over --max-prune, waiting for a release or --force-prune.",
            &["replica"],
        );
        let prunes_delayed = gauge(
            "k8s_sync_prunes_delayed",
            "Prunes waiting for --prune-delay to pass.",
            &["replica"],
        );
        let replication_lag = GaugeVec::new(
            Opts::new(
                "k8s_sync_replication_lag_seconds",
                "Age of the oldest change not yet applied to the replica (held and delayed prunes aside).",
            ),
            &["replica"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(replication_lag.clone()))
            .expect("registered once");
        let credentials_expiry = GaugeVec::new(
            Opts::new(
                "k8s_sync_credentials_expiry_seconds",
                "Seconds until the replica's token expires (negative once expired).",
            ),
            &["replica"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(credentials_expiry.clone()))
            .expect("registered once");
        let queue_depth = gauge(
            "k8s_sync_queue_depth",
            "Changes waiting in the watch queue.",
            &[],
        )
        .with_label_values::<&str>(&[]);
        let watch_events = counter(
            "k8s_sync_watch_events_total",
            "Watch events seen on the primary, by kind and type.",
            &["kind", "type"],
        );
        let watchers = gauge(
            "k8s_sync_watcher_running",
            "Whether a watcher (cluster/kind) runs (1) or is starting or recovering (0).",
            &["watcher"],
        );
        let propagation_seconds = histogram(
            "k8s_sync_propagation_seconds",
            "Time from a primary event to the replica write that carried it.",
            &["replica"],
            latency,
        );
        let http_requests = counter(
            "k8s_sync_http_requests_total",
            "HTTP API requests, by route, method and status code.",
            &["route", "method", "code"],
        );
        let http_seconds = histogram(
            "k8s_sync_http_request_duration_seconds",
            "Time to answer an HTTP API request, by route.",
            &["route"],
            prometheus::exponential_buckets(0.0005, 4.0, 8).expect("valid buckets"),
        );
        let cluster_requests = counter(
            "k8s_sync_cluster_requests_total",
            "Requests sent to each cluster (watch streams aside), by type: read or write.",
            &["cluster", "type"],
        );
        Metrics {
            registry,
            jobs,
            apply_seconds,
            pass_seconds,
            drifted,
            reachable,
            primary_reachable,
            leader,
            last_success,
            prunes_held,
            prunes_delayed,
            replication_lag,
            credentials_expiry,
            queue_depth,
            watch_events,
            watchers,
            propagation_seconds,
            http_requests,
            http_seconds,
            http_listening,
            http_listener_errors,
            http_connections,
            http_connections_closed,
            cluster_requests,
            tracked: Mutex::default(),
            refreshers: Mutex::default(),
        }
    }

    /// Runs `refresh` before every rendering.
    pub fn refresh_with(&self, refresh: Refresher) {
        self.refreshers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(refresh);
    }

    /// Reports the requests counted for `cluster` from now on.
    pub fn track_requests(&self, cluster: &str, requests: Arc<Requests>) {
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((cluster.to_string(), requests));
    }

    /// Records the outcome of a full pass on one replica, `drifted` objects left out of step.
    pub fn record_pass(&self, report: &Report, drifted: usize) {
        let replica = report.replica.as_str();
        self.drifted
            .with_label_values(&[replica])
            .set(i64::try_from(drifted).unwrap_or(i64::MAX));
        self.reachable
            .with_label_values(&[replica])
            .set(i64::from(report.error.is_none()));
        let gauge = |g: &IntGaugeVec, n: usize| {
            g.with_label_values(&[replica])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        gauge(&self.prunes_held, report.held);
        gauge(&self.prunes_delayed, report.delayed);
        if report.succeeded() {
            self.last_success
                .with_label_values(&[replica])
                .set(jiff::Timestamp::now().as_second());
        }
    }

    /// The value of a per-replica gauge, `None` when nothing set it in this process.
    pub fn replica_gauge(&self, gauge: &IntGaugeVec, replica: &str) -> Option<i64> {
        use prometheus::core::Collector;
        gauge.collect().iter().find_map(|family| {
            family.get_metric().iter().find_map(|metric| {
                let labelled = metric
                    .get_label()
                    .iter()
                    .any(|l| l.name() == "replica" && l.value() == replica);
                labelled.then(|| metric.get_gauge().get_value() as i64)
            })
        })
    }

    /// Records one HTTP request. `route` is the route's pattern (a bounded set), or `unmatched`.
    pub fn observe_request(&self, route: &str, method: &str, code: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[route, method, &code.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        use std::sync::atomic::Ordering;
        for refresh in self
            .refreshers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            refresh(self);
        }
        // The clusters count in atomics of their own; the counters catch up at each scrape.
        // The lock keeps two scrapes from adding the same requests twice.
        for (cluster, requests) in self
            .tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (kind, count) in [("read", &requests.reads), ("write", &requests.writes)] {
                let counter = self.cluster_requests.with_label_values(&[cluster, kind]);
                counter.inc_by(count.load(Ordering::Relaxed).saturating_sub(counter.get()));
            }
        }
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding to memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once_filled() {
        let metrics = Metrics::new();
        metrics
            .jobs
            .with_label_values(&["r", "ConfigMap", "create", "succeeded"])
            .inc();
        metrics
            .apply_seconds
            .with_label_values(&["r"])
            .observe(0.02);
        metrics.pass_seconds.observe(0.3);
        metrics.record_pass(
            &Report {
                replica: "r".into(),
                ..Report::default()
            },
            3,
        );
        metrics.queue_depth.set(2);
        metrics
            .watch_events
            .with_label_values(&["ConfigMap", "apply"])
            .inc();
        metrics
            .watchers
            .with_label_values(&["primary/configmaps"])
            .set(1);
        metrics
            .propagation_seconds
            .with_label_values(&["r"])
            .observe(0.1);
        let requests = Arc::new(Requests::default());
        metrics.track_requests("dr", requests.clone());
        requests
            .reads
            .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        assert!(
            metrics
                .render()
                .contains("k8s_sync_cluster_requests_total{cluster=\"dr\",type=\"read\"} 2")
        );
        requests
            .reads
            .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        let text = metrics.render();
        for family in [
            "k8s_sync_jobs_total{action=\"create\",kind=\"ConfigMap\",replica=\"r\",result=\"succeeded\"} 1",
            "k8s_sync_apply_duration_seconds_count{replica=\"r\"} 1",
            "k8s_sync_pass_duration_seconds_count 1",
            "k8s_sync_drifted_objects{replica=\"r\"} 3",
            "k8s_sync_replica_reachable{replica=\"r\"} 1",
            "k8s_sync_last_successful_pass_timestamp_seconds{replica=\"r\"}",
            "k8s_sync_queue_depth 2",
            "k8s_sync_watch_events_total{kind=\"ConfigMap\",type=\"apply\"} 1",
            "k8s_sync_watcher_running{watcher=\"primary/configmaps\"} 1",
            "k8s_sync_propagation_seconds_count{replica=\"r\"} 1",
            "k8s_sync_cluster_requests_total{cluster=\"dr\",type=\"read\"} 5",
            "k8s_sync_cluster_requests_total{cluster=\"dr\",type=\"write\"} 0",
        ] {
            assert!(text.contains(family), "missing {family}\n{text}");
        }
    }
}
