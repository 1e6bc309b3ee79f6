//! Metrics in CloudWatch's Embedded Metric Format (EMF): JSON lines on stdout (the function's log)
//! that CloudWatch Logs turns into metrics — no PutMetricData call, no agent, nothing sent on the
//! invocation's critical path.
//!
//! Every name is a [`Metric`] (never a free string), with its unit and its dimensions fixed by the
//! variant. Dimension values are `&'static str` by type — the function's name, a [`Product`], an
//! [`ErrorCode`] — so no call site can turn a tenant, an id or a URL into a dimension: each custom
//! metric costs money per distinct dimension combination, and ours stay a few hundred at most.
//! The tenant is a *property* (a plain field of the EMF document): it is searchable in CloudWatch
//! Logs Insights (README, "Metrics (CloudWatch EMF)") and costs nothing as a metric.
//!
//! Recording is per invocation: the runtime (`app.rs`, the sweeps) runs each invocation inside
//! [`scope`], which puts a fresh [`Recorder`] in a tokio task-local for that invocation's future
//! and writes its documents once when the invocation ends. A task-local instead of a parameter so
//! the transport, the token provider and the leases record without every signature between the
//! handler and them carrying a recorder; and no global mutable state: two invocations never share
//! one. Work spawned onto another task (`tokio::spawn`) is outside the scope and records nothing —
//! the runtime spawns none (the issue job runs everything inside one future, see `issues::job`).
//! [`record`] outside any scope (tests, cold start) does nothing.
//!
//! What a killed instance had recorded is lost with it (the documents are written at the end), as
//! are its other last log lines: counts are a lower bound under kills, exact otherwise.
//!
//! No secret reaches a document: values are numbers, dimensions are static names, and the only
//! property is the tenant id (not a secret).

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::domain::{Product, TenantId};
use crate::error::ErrorCode;

/// EMF's limits (the specification): metrics per document, dimensions per dimension set, and
/// values in one metric's array. A recorder with more splits into more documents.
pub const MAX_METRICS: usize = 100;
pub const MAX_DIMENSIONS: usize = 30;
pub const MAX_VALUES: usize = 100;

/// The namespace when `BRIDGE_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "AtlassianBridge";

/// The property that carries the tenant (never a dimension).
pub const TENANT_PROPERTY: &str = "tenant";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The dimensions a metric may have; every metric has `Function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Function,
    Product,
    ErrorCode,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Function => "Function",
            Dimension::Product => "Product",
            Dimension::ErrorCode => "ErrorCode",
        }
    }
}

use Dimension::{ErrorCode as Code, Function as Fun, Product as Prod};

/// Defines [`Metric`]: `Variant = ("Name", unit, [dimension sets]), "what it counts"`. The first
/// dimension set is the one the metric is recorded with; the others are roll-ups CloudWatch
/// publishes from the same document (e.g. failures of a function across codes, for an alarm).
macro_rules! metrics {
    ($($variant:ident = ($name:literal, $unit:ident, [$([$($dim:ident),*]),*]), $doc:literal;)*) => {
        /// Every metric the functions emit.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Metric {
            $(#[doc = $doc] $variant,)*
        }

        impl Metric {
            pub const ALL: &'static [Metric] = &[$(Metric::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Metric::$variant => $name,)* }
            }

            pub fn unit(self) -> Unit {
                match self { $(Metric::$variant => Unit::$unit,)* }
            }

            /// The dimension sets: the first is the metric's own, the rest roll-ups of it.
            pub fn dimension_sets(self) -> &'static [&'static [Dimension]] {
                match self { $(Metric::$variant => &[$(&[$($dim),*]),*],)* }
            }

            pub fn description(self) -> &'static str {
                match self { $(Metric::$variant => $doc,)* }
            }
        }
    };
}

metrics! {
    JobsStarted = ("JobsStarted", Count, [[Fun]]), "Job runs begun: an event delivery of the function's job, or a synchronous publish/issue request.";
    JobsSucceeded = ("JobsSucceeded", Count, [[Fun]]), "Job runs that ended done (a request answered 2xx, an event whose outcome event was emitted).";
    JobsFailed = ("JobsFailed", Count, [[Fun, Code], [Fun]]), "Job runs that failed for good, by error code (`Publish Failed` with `retryable: false`, or a request answered with a code that is not retried).";
    JobsRetried = ("JobsRetried", Count, [[Fun, Code], [Fun]]), "Job runs that stopped with a retryable code: the event is delivered again, the caller told to retry.";
    ItemsCreated = ("ItemsCreated", Count, [[Fun]]), "Jira issues created for action items, counted when recorded in the ledger (by their creator, or by the run that found an interrupted attempt's issue).";
    ItemsFailed = ("ItemsFailed", Count, [[Fun]]), "Action items recorded as failed for good, with their reason.";
    PagesPublished = ("PagesPublished", Count, [[Fun]]), "Publications that reached `published` (page and PDF written).";
    AtlassianLatency = ("AtlassianLatency", Milliseconds, [[Fun, Prod], [Prod]]), "Each HTTP attempt to a product's REST API, until its headers (or failure); the sample count is the number of attempts.";
    AtlassianThrottled = ("AtlassianThrottled", Count, [[Fun, Prod], [Prod]]), "429 answers from a product's REST API.";
    TokenRefreshes = ("TokenRefreshes", Count, [[Fun]]), "OAuth access-token refreshes that succeeded (a new pair issued).";
    TokenRefreshFailures = ("TokenRefreshFailures", Count, [[Fun]]), "OAuth refreshes the token endpoint refused or failed (`invalid_grant` included).";
    RefreshLeaseWait = ("RefreshLeaseWait", Milliseconds, [[Fun]]), "Time a token request waited for another instance's refresh (the single-refresher lease).";
    TenantSlotWait = ("TenantSlotWait", Milliseconds, [[Fun]]), "Time taking a tenant's fair-share slot took (admitted or not).";
    TenantSlotRefused = ("TenantSlotRefused", Count, [[Fun]]), "Jobs and requests refused a fair-share slot (every slot taken, or the tenant paused by Atlassian).";
    JobLeaseWait = ("JobLeaseWait", Milliseconds, [[Fun]]), "Time a job run waited for another delivery holding its records (job leases).";
}

impl Metric {
    /// Counts are summed within an invocation (one value per document); timings keep each sample
    /// so CloudWatch's percentiles see them.
    fn summed(self) -> bool {
        self.unit() == Unit::Count
    }
}

/// One value of one metric, with what its dimensions and the tenant property are.
#[derive(Debug, Clone)]
pub struct Sample {
    metric: Metric,
    value: f64,
    product: Option<Product>,
    code: Option<ErrorCode>,
    tenant: Option<TenantId>,
}

impl Sample {
    pub fn new(metric: Metric, value: f64) -> Self {
        Self { metric, value, product: None, code: None, tenant: None }
    }

    /// One more of a count.
    pub fn count(metric: Metric) -> Self {
        Self::new(metric, 1.0)
    }

    pub fn millis(metric: Metric, elapsed: Duration) -> Self {
        Self::new(metric, elapsed.as_secs_f64() * 1000.0)
    }

    pub fn product(mut self, product: Product) -> Self {
        self.product = Some(product);
        self
    }

    pub fn code(mut self, code: ErrorCode) -> Self {
        self.code = Some(code);
        self
    }

    /// The tenant the sample is about, when it is not the invocation's (a sweep over tenants).
    pub fn tenant(mut self, tenant: &TenantId) -> Self {
        self.tenant = Some(tenant.clone());
        self
    }

    /// The value of dimension `d` (only the metric's own dimensions are ever asked): a static
    /// name, `unknown` when the call site gave none.
    fn dimension(&self, d: Dimension, function: &'static str) -> &'static str {
        match d {
            Dimension::Function => function,
            Dimension::Product => self.product.map_or("unknown", Product::as_str),
            Dimension::ErrorCode => self.code.map_or("unknown", ErrorCode::as_str),
        }
    }
}

/// One document's worth of grouping: the tenant property and the dimension values (and which
/// sets they form), shared by every metric in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    tenant: Option<String>,
    sets: &'static [&'static [Dimension]],
    values: Vec<(Dimension, &'static str)>,
}

#[derive(Default)]
struct State {
    tenant: Option<TenantId>,
    entries: BTreeMap<Group, BTreeMap<Metric, Vec<f64>>>,
}

/// The metrics of one invocation of one function.
pub struct Recorder {
    function: &'static str,
    state: Mutex<State>,
}

impl Recorder {
    pub fn new(function: &'static str) -> Self {
        Self { function, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant of the invocation, for samples that name none.
    pub fn set_tenant(&self, tenant: &TenantId) {
        self.lock().tenant = Some(tenant.clone());
    }

    pub fn record(&self, sample: Sample) {
        if !sample.value.is_finite() {
            return;
        }
        let metric = sample.metric;
        let mut dims: Vec<Dimension> = metric.dimension_sets().iter().flat_map(|s| s.iter().copied()).collect();
        dims.sort();
        dims.dedup();
        let values = dims.into_iter().map(|d| (d, sample.dimension(d, self.function))).collect();
        let mut state = self.lock();
        let tenant = sample.tenant.as_ref().or(state.tenant.as_ref()).map(|t| t.as_str().to_owned());
        let group = Group { tenant, sets: metric.dimension_sets(), values };
        let samples = state.entries.entry(group).or_default().entry(metric).or_default();
        match samples.first_mut() {
            Some(sum) if metric.summed() => *sum += sample.value,
            _ => samples.push(sample.value),
        }
    }

    /// The EMF documents of everything recorded, at `timestamp_ms`, within EMF's limits.
    pub fn documents(&self, namespace: &str, timestamp_ms: i64) -> Vec<Value> {
        documents(&self.lock().entries, namespace, timestamp_ms, MAX_METRICS, MAX_VALUES)
    }

    /// Writes the documents as lines on stdout, one write per line (CloudWatch Logs takes each
    /// line as one event), and forgets them.
    pub fn flush(&self, namespace: &str) {
        let now = time::OffsetDateTime::now_utc();
        let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        let docs = self.documents(namespace, ms);
        self.lock().entries.clear();
        let mut out = std::io::stdout().lock();
        for doc in docs {
            // A failed write of a metric must not fail the invocation; there is nowhere to say it.
            let _ = writeln!(out, "{doc}");
        }
        let _ = out.flush();
    }
}

/// Splits the grouped samples into documents: one group per document (its dimension values are
/// the document's root fields), at most `max_metrics` metrics each and at most `max_values`
/// values in a metric's array; a metric with more values continues in the next document.
fn documents(
    entries: &BTreeMap<Group, BTreeMap<Metric, Vec<f64>>>,
    namespace: &str,
    timestamp_ms: i64,
    max_metrics: usize,
    max_values: usize,
) -> Vec<Value> {
    let mut docs = Vec::new();
    for (group, metrics) in entries {
        let rounds = metrics.values().map(|v| v.len().div_ceil(max_values)).max().unwrap_or(0);
        for round in 0..rounds {
            let present: Vec<(Metric, &[f64])> =
                metrics.iter().filter_map(|(m, v)| v.chunks(max_values).nth(round).map(|chunk| (*m, chunk))).collect();
            for part in present.chunks(max_metrics) {
                docs.push(document(group, part, namespace, timestamp_ms));
            }
        }
    }
    docs
}

fn document(group: &Group, metrics: &[(Metric, &[f64])], namespace: &str, timestamp_ms: i64) -> Value {
    let sets: Vec<Vec<&str>> = group.sets.iter().map(|set| set.iter().map(|d| d.as_str()).collect()).collect();
    let definitions: Vec<Value> =
        metrics.iter().map(|(m, _)| json!({"Name": m.name(), "Unit": m.unit().as_str()})).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": sets, "Metrics": definitions}],
        }),
    );
    for (d, value) in &group.values {
        root.insert(d.as_str().into(), Value::from(*value));
    }
    if let Some(tenant) = &group.tenant {
        root.insert(TENANT_PROPERTY.into(), Value::from(tenant.as_str()));
    }
    for (m, values) in metrics {
        let value = match values {
            [one] => json!(one),
            many => json!(many),
        };
        root.insert(m.name().into(), value);
    }
    Value::Object(root)
}

tokio::task_local! {
    static CURRENT: Arc<Recorder>;
}

/// Runs one invocation of `function` with its own recorder, and writes its metrics (under
/// `namespace`) once it ends.
pub async fn scope<F: Future>(namespace: &str, function: &'static str, invocation: F) -> F::Output {
    let recorder = Arc::new(Recorder::new(function));
    let output = CURRENT.scope(recorder.clone(), invocation).await;
    recorder.flush(namespace);
    output
}

/// Records `sample` in the current invocation's recorder (nothing outside [`scope`]).
pub fn record(sample: Sample) {
    let _ = CURRENT.try_with(|recorder| recorder.record(sample));
}

/// Sets the invocation's tenant (the property of its documents).
pub fn set_tenant(tenant: &TenantId) {
    let _ = CURRENT.try_with(|recorder| recorder.set_tenant(tenant));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn directive(doc: &Value) -> &Value {
        &doc["_aws"]["CloudWatchMetrics"][0]
    }

    #[test]
    fn a_document_has_the_emf_shape() {
        let recorder = Recorder::new("publish-page");
        recorder.set_tenant(&acme());
        recorder.record(Sample::count(Metric::JobsStarted));
        recorder.record(Sample::count(Metric::JobsStarted));
        recorder.record(Sample::count(Metric::JobsSucceeded));
        let docs = recorder.documents("Bridge/Test", 1_700_000_000_000);
        assert_eq!(docs.len(), 1, "{docs:?}");
        let doc = &docs[0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        let d = directive(doc);
        assert_eq!(d["Namespace"], "Bridge/Test");
        assert_eq!(d["Dimensions"], json!([["Function"]]));
        assert_eq!(
            d["Metrics"],
            json!([{"Name": "JobsStarted", "Unit": "Count"}, {"Name": "JobsSucceeded", "Unit": "Count"}])
        );
        // Every dimension named in a set has its value at the root, every metric too.
        assert_eq!(doc["Function"], "publish-page");
        assert_eq!(doc["JobsStarted"], 2.0);
        assert_eq!(doc["JobsSucceeded"], 1.0);
        assert_eq!(doc["tenant"], "acme");
    }

    #[test]
    fn the_tenant_is_a_property_never_a_dimension() {
        let recorder = Recorder::new("create-issue");
        recorder.set_tenant(&acme());
        for metric in Metric::ALL {
            recorder.record(Sample::count(*metric).product(Product::Jira).code(ErrorCode::UpstreamError));
        }
        let docs = recorder.documents("N", 0);
        assert!(!docs.is_empty());
        for doc in &docs {
            assert_eq!(doc["tenant"], "acme");
            for set in directive(doc)["Dimensions"].as_array().unwrap() {
                let set: Vec<&str> = set.as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
                assert!(!set.is_empty() && set.len() <= MAX_DIMENSIONS, "{set:?}");
                assert!(!set.iter().any(|d| d.eq_ignore_ascii_case("tenant")), "tenant as a dimension: {doc}");
                for d in set {
                    assert!(["Function", "Product", "ErrorCode"].contains(&d), "unexpected dimension {d}");
                    assert!(doc[d].is_string(), "dimension {d} without its value: {doc}");
                }
            }
        }
    }

    /// The number of distinct dimension combinations is bounded by the code, whatever the
    /// tenants: a thousand tenants add no metric, only documents' properties.
    #[test]
    fn tenants_do_not_multiply_dimension_combinations() {
        let recorder = Recorder::new("publish-page");
        for n in 0..1000 {
            let tenant = TenantId::parse(&format!("t-{n}")).unwrap();
            recorder.record(Sample::count(Metric::AtlassianThrottled).product(Product::Confluence).tenant(&tenant));
            recorder.record(Sample::count(Metric::JobsFailed).code(ErrorCode::Internal).tenant(&tenant));
        }
        let docs = recorder.documents("N", 0);
        let combinations: std::collections::BTreeSet<String> = docs
            .iter()
            .flat_map(|doc| {
                directive(doc)["Dimensions"].as_array().unwrap().iter().map(|set| {
                    let names: Vec<&str> = set.as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
                    names.iter().map(|d| format!("{d}={}", doc[*d].as_str().unwrap())).collect::<Vec<_>>().join(",")
                })
            })
            .collect();
        let expected: std::collections::BTreeSet<String> = [
            "Function=publish-page,Product=confluence",
            "Product=confluence",
            "Function=publish-page,ErrorCode=internal",
            "Function=publish-page",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(combinations, expected);
        // Every metric's dimension values are static names: the bound over all metrics.
        let most: usize = Metric::ALL
            .iter()
            .map(|m| {
                m.dimension_sets()
                    .iter()
                    .map(|set| {
                        set.iter()
                            .map(|d| match d {
                                Dimension::Function => 9,
                                Dimension::Product => Product::ALL.len() + 1,
                                Dimension::ErrorCode => ErrorCode::ALL.len() + 1,
                            })
                            .product::<usize>()
                    })
                    .sum::<usize>()
            })
            .sum();
        assert!(most < 2000, "{most} possible dimension combinations");
    }

    #[test]
    fn a_sample_only_gets_its_metrics_dimensions() {
        let recorder = Recorder::new("publish-page");
        // A product given to a metric without that dimension is not a dimension.
        recorder.record(Sample::count(Metric::PagesPublished).product(Product::Confluence));
        let docs = recorder.documents("N", 0);
        assert_eq!(directive(&docs[0])["Dimensions"], json!([["Function"]]));
        assert!(docs[0].get("Product").is_none(), "{}", docs[0]);
        // A dimension the call site forgot is `unknown`, never absent (CloudWatch would drop it).
        recorder.record(Sample::count(Metric::AtlassianThrottled));
        let docs = recorder.documents("N", 0);
        let throttled = docs.iter().find(|d| d.get("AtlassianThrottled").is_some()).unwrap();
        assert_eq!(throttled["Product"], "unknown");
        assert_eq!(directive(throttled)["Dimensions"], json!([["Function", "Product"], ["Product"]]));
    }

    #[test]
    fn failures_roll_up_across_codes_and_are_grouped_by_code() {
        let recorder = Recorder::new("create-issue");
        recorder.record(Sample::count(Metric::JobsFailed).code(ErrorCode::PublishFailed));
        recorder.record(Sample::count(Metric::JobsFailed).code(ErrorCode::PublishFailed));
        recorder.record(Sample::count(Metric::JobsFailed).code(ErrorCode::InvalidRequest));
        let docs = recorder.documents("N", 0);
        assert_eq!(docs.len(), 2, "{docs:?}");
        let by_code: BTreeMap<&str, f64> =
            docs.iter().map(|d| (d["ErrorCode"].as_str().unwrap(), d["JobsFailed"].as_f64().unwrap())).collect();
        assert_eq!(by_code, BTreeMap::from([("invalid_request", 1.0), ("publish_failed", 2.0)]));
        for doc in &docs {
            assert_eq!(directive(doc)["Dimensions"], json!([["Function", "ErrorCode"], ["Function"]]));
        }
    }

    #[test]
    fn more_than_100_values_of_a_metric_continue_in_the_next_document() {
        let recorder = Recorder::new("publish-page");
        recorder.record(Sample::count(Metric::JobsStarted));
        for n in 0..250 {
            recorder.record(Sample::new(Metric::AtlassianLatency, f64::from(n)).product(Product::Confluence));
        }
        let docs = recorder.documents("N", 0);
        let latency: Vec<&Value> = docs.iter().filter(|d| d.get("AtlassianLatency").is_some()).collect();
        assert_eq!(latency.len(), 3);
        let lengths: Vec<usize> =
            latency.iter().map(|d| d["AtlassianLatency"].as_array().map_or(1, Vec::len)).collect();
        assert_eq!(lengths, [100, 100, 50]);
        let all: Vec<f64> = latency
            .iter()
            .flat_map(|d| d["AtlassianLatency"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        assert_eq!(all, (0..250).map(f64::from).collect::<Vec<_>>(), "no sample lost or repeated");
        for doc in &docs {
            let definitions = directive(doc)["Metrics"].as_array().unwrap();
            assert!(definitions.len() <= MAX_METRICS);
            for definition in definitions {
                let name = definition["Name"].as_str().unwrap();
                assert!(doc[name].as_array().is_none_or(|v| v.len() <= MAX_VALUES));
            }
        }
    }

    #[test]
    fn more_metrics_than_a_document_takes_are_split() {
        // Our metrics are fewer than 100, so the split is proven at a smaller limit.
        let mut metrics = BTreeMap::new();
        for m in Metric::ALL {
            metrics.insert(*m, vec![1.0]);
        }
        let group = Group { tenant: Some("acme".into()), sets: &[&[Dimension::Function]], values: vec![(Fun, "f")] };
        let entries = BTreeMap::from([(group, metrics)]);
        let docs = documents(&entries, "N", 0, 4, MAX_VALUES);
        assert_eq!(docs.len(), Metric::ALL.len().div_ceil(4));
        let mut seen = Vec::new();
        for doc in &docs {
            let definitions = directive(doc)["Metrics"].as_array().unwrap();
            assert!(definitions.len() <= 4);
            assert_eq!(doc["tenant"], "acme");
            assert_eq!(doc["Function"], "f");
            seen.extend(definitions.iter().map(|d| d["Name"].as_str().unwrap().to_owned()));
        }
        assert_eq!(seen.len(), Metric::ALL.len());
        assert_eq!(MAX_METRICS, 100);
        assert_eq!(MAX_VALUES, 100);
    }

    #[test]
    fn every_metric_has_a_unique_name_and_at_most_30_dimensions_per_set() {
        let names: std::collections::BTreeSet<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        for m in Metric::ALL {
            assert_eq!(m.dimension_sets()[0][0], Dimension::Function, "{m:?}: Function comes first");
            for set in m.dimension_sets() {
                assert!(!set.is_empty() && set.len() <= MAX_DIMENSIONS);
            }
        }
    }

    #[test]
    fn a_sample_names_its_own_tenant_in_a_sweep() {
        let recorder = Recorder::new("keep-alive");
        recorder.record(Sample::count(Metric::TokenRefreshes).tenant(&acme()));
        recorder.record(Sample::count(Metric::TokenRefreshes));
        let docs = recorder.documents("N", 0);
        assert_eq!(docs.len(), 2);
        assert!(docs.iter().any(|d| d["tenant"] == "acme"));
        assert!(docs.iter().any(|d| d.get("tenant").is_none()), "no invocation tenant: no property");
    }

    #[tokio::test]
    async fn a_scope_records_its_invocation_only() {
        // Outside a scope nothing is recorded, and nothing fails.
        record(Sample::count(Metric::JobsStarted));
        let seen = Arc::new(Recorder::new("t"));
        let inner = seen.clone();
        CURRENT
            .scope(inner, async {
                set_tenant(&acme());
                record(Sample::count(Metric::JobsStarted));
                record(Sample::millis(Metric::JobLeaseWait, Duration::from_millis(1500)));
            })
            .await;
        let docs = seen.documents("N", 0);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["JobsStarted"], 1.0);
        assert_eq!(docs[0]["JobLeaseWait"], 1500.0);
        assert_eq!(docs[0]["tenant"], "acme");
    }
}
