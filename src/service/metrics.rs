//! Prometheus metrics of `oob serve` (OpenMetrics text on `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemedyLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub sink: String,
    pub outcome: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub probes: Family<ResultLabel, Counter>,
    pub verdicts: Family<VerdictLabel, Counter>,
    pub remedies: Family<RemedyLabels, Counter>,
    pub bmc_seconds: Family<OpLabel, Histogram>,
    pub journal_entries: Gauge,
    pub breaker_open: Gauge,
    pub leader: Gauge,
    pub machines: Family<StageLabel, Gauge>,
    /// Rounds that could not start on their tick because the machine's last one still ran.
    pub rounds_late: Counter,
    /// Hardware checks put off to the next round because every slot was taken.
    pub hardware_deferred: Counter,
    /// Machines whose round was still running at the last tick.
    pub round_backlog: Gauge,
    /// Report deliveries not yet taken by their sink.
    pub reports_pending: Gauge,
    /// Delivery attempts by sink and outcome (delivered, failed, expired).
    pub report_deliveries: Family<DeliveryLabels, Counter>,
}

fn bmc_histogram() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("oob");
        let probes = Family::<ResultLabel, Counter>::default();
        let verdicts = Family::<VerdictLabel, Counter>::default();
        let remedies = Family::<RemedyLabels, Counter>::default();
        let bmc_seconds =
            Family::<OpLabel, Histogram>::new_with_constructor(bmc_histogram as fn() -> Histogram);
        let journal_entries = Gauge::default();
        let breaker_open = Gauge::default();
        let leader = Gauge::default();
        let machines = Family::<StageLabel, Gauge>::default();
        let rounds_late = Counter::default();
        let hardware_deferred = Counter::default();
        registry.register(
            "hardware_checks_deferred",
            "Hardware checks put off to the next round because every slot was taken",
            hardware_deferred.clone(),
        );
        let round_backlog = Gauge::default();
        registry.register(
            "rounds_late",
            "Rounds skipped on their tick because the machine's previous round still ran",
            rounds_late.clone(),
        );
        registry.register(
            "round_backlog",
            "Machines whose round was still running at the last tick",
            round_backlog.clone(),
        );
        registry.register(
            "probes",
            "Probe rounds by result (up, down)",
            probes.clone(),
        );
        registry.register("verdicts", "Verdicts by kind", verdicts.clone());
        registry.register(
            "remedies",
            "Remedies carried out, by kind and outcome",
            remedies.clone(),
        );
        registry.register(
            "bmc_call_seconds",
            "Duration of BMC work (confirm, power steps) in seconds",
            bmc_seconds.clone(),
        );
        registry.register(
            "journal_entries",
            "Actions in the journal",
            journal_entries.clone(),
        );
        registry.register(
            "breaker_open",
            "1 while the storm breaker is open",
            breaker_open.clone(),
        );
        registry.register("leader", "1 while this replica leads", leader.clone());
        registry.register("machines", "Machines per ladder stage", machines.clone());
        let reports_pending = Gauge::default();
        registry.register(
            "reports_pending",
            "Report and follow-up deliveries waiting in the outbox",
            reports_pending.clone(),
        );
        let report_deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "report_deliveries",
            "Report delivery attempts by sink and outcome (delivered, failed, expired)",
            report_deliveries.clone(),
        );
        Self {
            reports_pending,
            report_deliveries,
            registry,
            probes,
            verdicts,
            remedies,
            bmc_seconds,
            journal_entries,
            breaker_open,
            leader,
            machines,
            rounds_late,
            hardware_deferred,
            round_backlog,
        }
    }
}

impl Metrics {
    pub fn remedy(&self, kind: &str, outcome: &str) {
        self.remedies
            .get_or_create(&RemedyLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
