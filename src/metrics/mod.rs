//! Prometheus metrics: the counters every layer bumps while it works (atomics, created once per
//! label set) and the encoding of them, with the values read at scrape time, in the Prometheus
//! text format. Labels come from fixed sets (protocol, method, status, error kind) or from names
//! an administrator made (groups, peers): never a path, a user or a user agent. A leaf: it
//! imports nothing of Kura.

mod process;

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The `Content-Type` of a scrape's answer (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The front end a request went to: the `protocol` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `/dav/` and the root's WebDAV probe.
    Webdav,
    /// Signed requests anywhere, and anonymous ones outside Kura's own paths.
    S3,
    /// Share links under `/s/`.
    Share,
    /// The admin API under `/api/v1`.
    Api,
    /// The browser app: its pages and its session API.
    App,
    Metrics,
    /// `/healthz`, `/.well-known/kura-node`, reserved paths.
    Other,
}

impl Protocol {
    const ALL: [Protocol; 7] = [
        Protocol::Webdav,
        Protocol::S3,
        Protocol::Share,
        Protocol::Api,
        Protocol::App,
        Protocol::Metrics,
        Protocol::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Webdav => "webdav",
            Protocol::S3 => "s3",
            Protocol::Share => "share",
            Protocol::Api => "api",
            Protocol::App => "app",
            Protocol::Metrics => "metrics",
            Protocol::Other => "other",
        }
    }
}

/// Why a request was refused before any handler ran: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    /// The failed-authentication throttle (429).
    AuthFailures,
    /// The per-address limit on share links (429).
    ShareRequests,
    /// The same budget, spent by anonymous S3 reads (SlowDown).
    AnonymousS3,
}

impl Throttle {
    const ALL: [Throttle; 3] = [
        Throttle::AuthFailures,
        Throttle::ShareRequests,
        Throttle::AnonymousS3,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Throttle::AuthFailures => "auth_failures",
            Throttle::ShareRequests => "share_requests",
            Throttle::AnonymousS3 => "anonymous_s3",
        }
    }
}

/// One request's labels: which front end served it, its method and its status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `Protocol::as_str`.
    pub protocol: &'static str,
    /// `method_label`.
    pub method: &'static str,
    /// The status code sent.
    pub status: u16,
}

/// Labels of the latency histogram (status left out to keep the series few).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `Protocol::as_str`.
    pub protocol: &'static str,
    /// `method_label`.
    pub method: &'static str,
}

/// A front end alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

/// Why a request was refused before any handler ran.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The kind of a storage backend error (OpenDAL's fixed list of kinds).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// A replication peer, by the name the administrator gave it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

/// A replication rule: peer and bucket, both named by the administrator.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    peer: String,
    bucket: String,
}

/// Bytes a replication transfer moved: to or from which peer, `push` or `pull`, and `whole`
/// (the file's bytes), `delta` (a delta body or the ranges fetched for one) or `lists`
/// (chunk lists read from the peer).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    peer: String,
    direction: &'static str,
    kind: &'static str,
}

/// A group, by its name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every counter Kura keeps while it runs; one per process (see `get`).
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    received: Family<ProtocolLabel, Counter>,
    sent: Family<ProtocolLabel, Counter>,
    uploads: Family<ProtocolLabel, Gauge>,
    auth_failures: Family<ProtocolLabel, Counter>,
    throttled: Family<ReasonLabel, Counter>,
    storage_errors: Family<KindLabel, Counter>,
    db_errors: Counter,
    replication_errors: Family<PeerLabel, Counter>,
    replication_bytes: Family<TransferLabels, Counter>,
}

/// Seconds from 1 ms to about 65 s, doubling: small WebDAV answers to long transfers.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        requests: Family::default(),
        duration: Family::new_with_constructor(latency_histogram),
        received: Family::default(),
        sent: Family::default(),
        uploads: Family::default(),
        auth_failures: Family::default(),
        throttled: Family::default(),
        storage_errors: Family::default(),
        db_errors: Counter::default(),
        replication_errors: Family::default(),
        replication_bytes: Family::default(),
    };
    // series of fixed label sets start at 0, so that a rate over them is 0, not absent
    for p in Protocol::ALL {
        let l = ProtocolLabel {
            protocol: p.as_str(),
        };
        m.received.get_or_create_owned(&l);
        m.sent.get_or_create_owned(&l);
        m.uploads.get_or_create_owned(&l);
        m.auth_failures.get_or_create_owned(&l);
    }
    for t in Throttle::ALL {
        m.throttled
            .get_or_create_owned(&ReasonLabel { reason: t.as_str() });
    }
    m
});

/// The process's metrics (one set per process, as Prometheus expects of one target).
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, labels: &RequestLabels) {
        self.requests.get_or_create(labels).inc();
    }

    /// The latency histogram of one protocol and method (observed when the answer is sent).
    pub fn latency(&self, labels: &RouteLabels) -> Histogram {
        self.duration.get_or_create_owned(labels)
    }

    /// Request body bytes read from clients of `p`.
    pub fn received(&self, p: Protocol) -> Counter {
        self.received.get_or_create_owned(&ProtocolLabel {
            protocol: p.as_str(),
        })
    }

    /// Response body bytes sent to clients of `p`.
    pub fn sent(&self, p: Protocol) -> Counter {
        self.sent.get_or_create_owned(&ProtocolLabel {
            protocol: p.as_str(),
        })
    }

    /// Requests with a body being served right now, per protocol.
    pub fn uploads(&self, p: Protocol) -> Gauge {
        self.uploads.get_or_create_owned(&ProtocolLabel {
            protocol: p.as_str(),
        })
    }

    /// Counts a request refused for wrong credentials.
    pub fn auth_failure(&self, p: Protocol) {
        self.auth_failures
            .get_or_create(&ProtocolLabel {
                protocol: p.as_str(),
            })
            .inc();
    }

    /// Counts a request refused by a rate limit or the failed-authentication throttle.
    pub fn throttled(&self, t: Throttle) {
        self.throttled
            .get_or_create(&ReasonLabel { reason: t.as_str() })
            .inc();
    }

    /// Counts a storage backend error reaching the core (`kind`: OpenDAL's error kind).
    pub fn storage_error(&self, kind: &'static str) {
        self.storage_errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts a failed database query or transaction.
    pub fn db_error(&self) {
        self.db_errors.inc();
    }

    /// Counts a shipment to `peer` that failed (the rule retries it with backoff).
    pub fn replication_error(&self, peer: &str) {
        self.replication_errors
            .get_or_create(&PeerLabel { peer: peer.into() })
            .inc();
    }
}

impl Metrics {
    /// Counts `n` bytes a replication transfer with `peer` moved (`direction`: `push` or
    /// `pull`; `kind`: `whole`, `delta` or `lists`).
    pub fn replication_bytes(
        &self,
        peer: &str,
        direction: &'static str,
        kind: &'static str,
        n: u64,
    ) {
        self.replication_bytes
            .get_or_create(&TransferLabels {
                peer: peer.into(),
                direction,
                kind,
            })
            .inc_by(n);
    }
}

/// One group's usage and limits, read from SQL at scrape time.
pub struct GroupUsage {
    /// The group's name (the label).
    pub group: String,
    /// Bytes of current files.
    pub used_bytes: i64,
    /// Current files.
    pub used_objects: i64,
    /// Bytes of noncurrent versions and trash.
    pub version_bytes: i64,
    /// Byte quota, if any (no series without one).
    pub quota_bytes: Option<i64>,
    /// File quota, if any.
    pub quota_objects: Option<i64>,
}

/// One replication rule's state, read from SQL at scrape time.
pub struct RuleState {
    /// The peer's local name.
    pub peer: String,
    /// The replicated bucket.
    pub bucket: String,
    /// Journal entries not yet shipped.
    pub backlog: i64,
    /// Age of the oldest of them (0 when none waits).
    pub lag_seconds: f64,
    /// Whether the last shipment failed.
    pub failing: bool,
}

/// What a scrape reads from the database just before encoding.
#[derive(Default)]
pub struct Snapshot {
    /// Every group.
    pub groups: Vec<GroupUsage>,
    /// Every replication rule.
    pub rules: Vec<RuleState>,
    /// Whether the database answered the scrape's queries.
    pub db_up: bool,
}

/// The whole scrape: the running counters, `snap`, the build and the process, as Prometheus
/// text.
pub fn encode(snap: &Snapshot) -> Result<String, std::fmt::Error> {
    let m = get();
    let mut root = Registry::default();
    // the standard process_* names, unprefixed, as every exporter writes them
    root.register_collector(Box::new(process::Process));
    let r = root.sub_registry_with_prefix("kura");
    r.register(
        "http_requests",
        "Requests answered, by protocol, method and status code",
        m.requests.clone(),
    );
    r.register(
        "http_request_duration_seconds",
        "Time from a request's arrival to the end of its answer's body",
        m.duration.clone(),
    );
    r.register(
        "http_received_bytes",
        "Request body bytes read from clients",
        m.received.clone(),
    );
    r.register(
        "http_sent_bytes",
        "Response body bytes sent to clients",
        m.sent.clone(),
    );
    r.register(
        "uploads_in_flight",
        "Requests with a body being served now",
        m.uploads.clone(),
    );
    r.register(
        "auth_failures",
        "Requests refused for wrong credentials",
        m.auth_failures.clone(),
    );
    r.register(
        "throttled_requests",
        "Requests refused by a rate limit (429 or SlowDown) before any handler ran",
        m.throttled.clone(),
    );
    r.register(
        "storage_errors",
        "Storage backend errors reaching the core, by OpenDAL error kind",
        m.storage_errors.clone(),
    );
    r.register(
        "db_errors",
        "Failed database queries and transactions",
        m.db_errors.clone(),
    );
    r.register(
        "replication_errors",
        "Failed shipments to a peer (each is retried with backoff)",
        m.replication_errors.clone(),
    );
    r.register(
        "replication_bytes",
        "Bytes replication moved per peer and direction: whole files, delta bodies and fetched ranges, chunk lists",
        m.replication_bytes.clone(),
    );
    let build = Info::new(vec![
        ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("commit".to_string(), env!("BUILD_GIT_COMMIT").to_string()),
    ]);
    r.register("build", "The running binary", build);
    let up = Gauge::<i64>::default();
    up.set(i64::from(snap.db_up));
    r.register(
        "database_up",
        "1 when the database answered this scrape's queries",
        up,
    );
    register_groups(r, &snap.groups);
    register_rules(r, &snap.rules);
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &root)?;
    Ok(out)
}

fn register_groups(r: &mut Registry, groups: &[GroupUsage]) {
    let fams: [(&str, &str, Family<GroupLabel, Gauge>); 5] = [
        (
            "group_used_bytes",
            "Bytes of current files a group pays for",
            Default::default(),
        ),
        (
            "group_used_objects",
            "Current files a group pays for",
            Default::default(),
        ),
        (
            "group_version_bytes",
            "Bytes of noncurrent versions and trash a group pays for",
            Default::default(),
        ),
        (
            "group_quota_bytes",
            "A group's byte quota (absent: none)",
            Default::default(),
        ),
        (
            "group_quota_objects",
            "A group's file quota (absent: none)",
            Default::default(),
        ),
    ];
    for g in groups {
        let l = GroupLabel {
            group: g.group.clone(),
        };
        fams[0].2.get_or_create(&l).set(g.used_bytes);
        fams[1].2.get_or_create(&l).set(g.used_objects);
        fams[2].2.get_or_create(&l).set(g.version_bytes);
        if let Some(q) = g.quota_bytes {
            fams[3].2.get_or_create(&l).set(q);
        }
        if let Some(q) = g.quota_objects {
            fams[4].2.get_or_create(&l).set(q);
        }
    }
    for (name, help, fam) in fams {
        r.register(name, help, fam);
    }
}

fn register_rules(r: &mut Registry, rules: &[RuleState]) {
    let backlog = Family::<RuleLabels, Gauge>::default();
    let lag = Family::<RuleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let failing = Family::<RuleLabels, Gauge>::default();
    for s in rules {
        let l = RuleLabels {
            peer: s.peer.clone(),
            bucket: s.bucket.clone(),
        };
        backlog.get_or_create(&l).set(s.backlog);
        lag.get_or_create(&l).set(s.lag_seconds);
        failing.get_or_create(&l).set(i64::from(s.failing));
    }
    r.register(
        "replication_backlog",
        "Changes of a bucket not yet shipped to a peer",
        backlog,
    );
    r.register(
        "replication_lag_seconds",
        "Age of the oldest change not yet shipped (0: none waiting)",
        lag,
    );
    r.register(
        "replication_failing",
        "1 while a rule's last shipment failed",
        failing,
    );
}

/// A request method as a label: one of a fixed set, anything else `other` (clients may send
/// any token as a method, and each would be a new series).
pub fn method_label(m: &http::Method) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET",
        "HEAD",
        "PUT",
        "POST",
        "DELETE",
        "OPTIONS",
        "PATCH",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
    ];
    KNOWN
        .iter()
        .find(|k| **k == m.as_str())
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        for m in ["GET", "PROPFIND", "UNLOCK"] {
            assert_eq!(
                method_label(&http::Method::from_bytes(m.as_bytes()).unwrap()),
                m
            );
        }
        for m in ["BREW", "get", "X-ANYTHING-AT-ALL"] {
            assert_eq!(
                method_label(&http::Method::from_bytes(m.as_bytes()).unwrap()),
                "other"
            );
        }
    }

    #[test]
    fn a_scrape_holds_the_snapshot_and_absent_quotas_stay_absent() {
        let snap = Snapshot {
            groups: vec![GroupUsage {
                group: "family".into(),
                used_bytes: 5,
                used_objects: 1,
                version_bytes: 0,
                quota_bytes: None,
                quota_objects: Some(9),
            }],
            rules: vec![],
            db_up: true,
        };
        let text = encode(&snap).unwrap();
        assert!(
            text.contains("kura_group_used_bytes{group=\"family\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("kura_group_quota_objects{group=\"family\"} 9\n"));
        assert!(!text.contains("kura_group_quota_bytes{"));
        assert!(text.contains("kura_database_up 1\n"));
        assert!(text.contains("kura_throttled_requests_total{reason=\"auth_failures\"} "));
    }
}
