//! Metrics of the HTTP API itself: requests by route, method and status, and their latency.
//! Rendered after the process's [`crate::metrics::Metrics`] at `/metrics`.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The API's own metrics.
pub struct HttpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    seconds: HistogramVec,
}

impl HttpMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "k8s_sync_http_requests_total",
                "HTTP API requests, by route, method and status code.",
            ),
            &["route", "method", "code"],
        )
        .expect("valid metric");
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "k8s_sync_http_request_duration_seconds",
                "Time to answer an HTTP API request, by route.",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 4.0, 8).expect("valid buckets")),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(seconds.clone()))
            .expect("registered once");
        HttpMetrics {
            registry,
            requests,
            seconds,
        }
    }

    /// Records one request. `route` is the route's pattern (bounded), or `unmatched`.
    pub fn observe(&self, route: &str, method: &str, code: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, method, &code.to_string()])
            .inc();
        self.seconds
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding to memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}
