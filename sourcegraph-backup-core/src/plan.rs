//! The planner: from a backup option, a deployment kind and the stores a user
//! marks external, decide what a backup includes and why.
//!
//! The plan is a pure function of the [`crate::catalog`]: every catalog row and
//! every deployment volume gets a decision with a reason drawn from the catalog,
//! and the two places where the catalog disagrees with itself are resolved
//! explicitly and recorded in [`Plan::resolutions`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::{Carrier, DataClass, Deployment, DeploymentVolume, Recreatable, VolumeContent, CATALOG};
pub use crate::model::BackupOption;
use crate::model::{Database, StoreKind};

/// The store ids of the configuration store and the three databases (see
/// [`Database::store_id`](crate::model::Database::store_id)).
pub mod unit_ids {
    /// The configuration store.
    pub const CONFIG: &str = crate::model::CONFIG_STORE;
    /// The main database.
    pub const PGSQL: &str = crate::model::Database::Frontend.store_id();
    /// The code intelligence database.
    pub const CODEINTEL: &str = crate::model::Database::CodeIntel.store_id();
    /// The code insights database.
    pub const CODEINSIGHTS: &str = crate::model::Database::CodeInsights.store_id();
}

/// What the planner is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// The chosen option.
    pub option: BackupOption,
    /// The deployment kind (decides the volumes of option 3).
    pub deployment: Deployment,
    /// Stores the user marks external (store ids such as `pgsql`, volume names,
    /// or `config` for configuration loaded from files): they live outside the
    /// deployment and are left out.
    pub external: BTreeSet<String>,
    /// Leave out what a new instance rebuilds by itself.
    pub skip_recreatable: bool,
    /// The caller states the databases are stopped, so their data directories
    /// may be archived as volumes instead of dumped logically.
    pub databases_stopped: bool,
    /// Database and configuration stores the caller was given no source for (no
    /// connection, no directory); volumes are not affected. Each is left out with that reason, unless the catalog marks it not
    /// recreatable: `pgsql`, and `config` while `pgsql` is included or the option
    /// is configuration only. Those stay included, and [`Plan::not_given`] lists
    /// them so the caller can refuse, naming what to add.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub not_given: BTreeSet<String>,
}

impl PlanRequest {
    /// A request for `option` on `deployment`, nothing external, nothing skipped.
    pub fn new(option: BackupOption, deployment: Deployment) -> Self {
        PlanRequest {
            option,
            deployment,
            external: BTreeSet::new(),
            skip_recreatable: false,
            databases_stopped: false,
            not_given: BTreeSet::new(),
        }
    }
}

/// Included or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Part of the backup.
    Included,
    /// Left out.
    Skipped,
}

/// How a volume's data is backed up when it is included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "method", content = "store")]
pub enum VolumeMethod {
    /// Streamed as a tar archive.
    Archive,
    /// Carried by the logical dump of a database store (a live data directory
    /// is not a backup).
    LogicalDump(String),
    /// Not backed up.
    None,
}

/// The decision for one catalog row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedItem {
    /// The catalog row id.
    pub catalog_id: String,
    /// Included or skipped.
    pub decision: Decision,
    /// Why, in words drawn from the catalog.
    pub reason: String,
    /// The store(s) that carry it when included.
    pub carried_by: Vec<String>,
}

/// The decision for one deployment volume (option 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedVolume {
    /// The volume name.
    pub name: String,
    /// Included or skipped.
    pub decision: Decision,
    /// How it is backed up.
    pub method: VolumeMethod,
    /// Why.
    pub reason: String,
}

/// The decision for one backup store (a unit that an exporter writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStore {
    /// The store id (`config`, `pgsql`, `gitserver-0`, ...).
    pub id: String,
    /// What kind of store writes it.
    pub kind: StoreKind,
    /// Included or skipped.
    pub decision: Decision,
    /// Why.
    pub reason: String,
}

/// A place where two catalog facts disagree, and what the planner did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Short name of the disagreement.
    pub topic: String,
    /// The two facts, as the catalog states them.
    pub facts: Vec<String>,
    /// What the planner used and why.
    pub decision: String,
}

/// A backup plan: what is included, what is skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The request the plan answers.
    pub request: PlanRequest,
    /// One decision per catalog row, in catalog order.
    pub items: Vec<PlannedItem>,
    /// One decision per deployment volume (empty unless option 3).
    pub volumes: Vec<PlannedVolume>,
    /// One decision per backup store.
    pub stores: Vec<PlannedStore>,
    /// How the catalog's disagreements were resolved.
    pub resolutions: Vec<Resolution>,
}

impl Plan {
    /// The ids of the included stores.
    pub fn included_stores(&self) -> impl Iterator<Item = &PlannedStore> {
        self.stores.iter().filter(|s| s.decision == Decision::Included)
    }

    /// Whether the store with this id is included.
    pub fn includes(&self, store_id: &str) -> bool {
        self.included_stores().any(|s| s.id == store_id)
    }

    /// The decision for a catalog row.
    pub fn item(&self, catalog_id: &str) -> Option<&PlannedItem> {
        self.items.iter().find(|i| i.catalog_id == catalog_id)
    }

    /// Included stores the request says were not given: they are not
    /// recreatable, so they cannot be left out silently. A caller refuses to run
    /// the plan while this is not empty, naming how to give each one (or to mark
    /// it external).
    pub fn not_given(&self) -> impl Iterator<Item = &PlannedStore> {
        self.included_stores()
            .filter(|s| s.kind != StoreKind::Volume && self.request.not_given.contains(&s.id))
    }
}

const PROMETHEUS_TOPIC: &str = "prometheus metrics vs prometheus volume";
const CODE_GRAPH_TOPIC: &str = "code graph data vs codeintel-db volume";

/// Builds the plan for a request.
pub fn plan(request: &PlanRequest) -> Plan {
    let resolutions = resolutions();
    let mut stores = Vec::new();
    let mut volumes = Vec::new();
    let external = |id: &str| request.external.contains(id);
    let skip_recreatable = request.skip_recreatable;

    let not_given = |id: &str| request.not_given.contains(id);

    if request.option != BackupOption::ConfigOnly {
        for (id, carrier) in [
            (unit_ids::PGSQL, Carrier::Database(Database::Frontend)),
            (unit_ids::CODEINTEL, Carrier::Database(Database::CodeIntel)),
            (unit_ids::CODEINSIGHTS, Carrier::Database(Database::CodeInsights)),
        ] {
            let stopped_volume = request.option == BackupOption::AllData && request.databases_stopped;
            let store = if external(id) {
                skipped(id, StoreKind::Postgres, EXTERNAL_DB)
            } else if stopped_volume {
                skipped(id, StoreKind::Postgres,
                    "the caller states the databases are stopped: the data directory volume is archived instead")
            } else if skip_recreatable && database_recreatable(carrier) {
                skipped(id, StoreKind::Postgres,
                    "recreatable (the deployment volume table says so and no catalog row says otherwise); skipped as asked")
            } else if not_given(id) && carrier != Carrier::Database(Database::Frontend) {
                skipped(
                    id,
                    StoreKind::Postgres,
                    &format!("{NOT_GIVEN_DB}; {}", database_loss(carrier)),
                )
            } else {
                included(id, StoreKind::Postgres, database_reason(carrier))
            };
            stores.push(store);
        }
    }

    // The configuration store goes into every option: it is small and never
    // recreatable. It lives in the main database: when that database is left
    // out and no other source of configuration was given, so is it.
    let pgsql_included = stores
        .iter()
        .any(|s| s.id == unit_ids::PGSQL && s.decision == Decision::Included);
    let config = if external(unit_ids::CONFIG) {
        skipped(unit_ids::CONFIG, StoreKind::Config, EXTERNAL_CONFIG)
    } else if not_given(unit_ids::CONFIG) && request.option != BackupOption::ConfigOnly && !pgsql_included {
        skipped(unit_ids::CONFIG, StoreKind::Config, NOT_GIVEN_CONFIG)
    } else {
        included(
            unit_ids::CONFIG,
            StoreKind::Config,
            "site configuration, code host connections and global settings: not recreatable",
        )
    };
    stores.insert(0, config);

    if request.option == BackupOption::AllData {
        for v in request.deployment.volumes() {
            let planned = plan_volume(request, v);
            if planned.method == VolumeMethod::Archive && planned.decision == Decision::Included {
                stores.push(included(v.name, StoreKind::Volume, &planned.reason));
            }
            volumes.push(planned);
        }
    }

    let items = CATALOG
        .iter()
        .map(|e| {
            let carriers = carriers_of(e.id, e.carrier, request, &stores, &volumes);
            let carried_by: Vec<String> = carriers
                .iter()
                .filter(|c| stores.iter().any(|s| &s.id == *c && s.decision == Decision::Included))
                .cloned()
                .collect();
            let recreatable = describe_recreatable(e.recreatable, e.note);
            if carried_by.is_empty() {
                let why = match (request.option, e.class) {
                    (BackupOption::ConfigOnly, _) => format!(
                        "not part of the option \"{}\"; recreatable: {recreatable}",
                        request.option.label()
                    ),
                    (BackupOption::AllPostgres, DataClass::DataOnDisk | DataClass::Ephemeral)
                        if e.carrier == Carrier::Volume =>
                    {
                        format!(
                        "kept on disk, outside Postgres: not part of the option \"{}\" (repositories are re-cloned and re-indexed after the restore); recreatable: {recreatable}",
                        request.option.label()
                    )
                    }
                    _ => format!("its store is skipped ({}); recreatable: {recreatable}",
                        carriers.iter().filter_map(|c| stores.iter().find(|s| &s.id == c).map(|s| format!("{}: {}", s.id, s.reason))).chain(volumes.iter().filter(|v| e.carrier == Carrier::Volume && carriers.contains(&v.name)).map(|v| format!("{}: {}", v.name, v.reason))).collect::<Vec<_>>().join("; ")),
                };
                PlannedItem { catalog_id: e.id.into(), decision: Decision::Skipped, reason: why, carried_by }
            } else {
                PlannedItem {
                    catalog_id: e.id.into(),
                    decision: Decision::Included,
                    reason: format!("carried by {}; recreatable: {recreatable}", carried_by.join(", ")),
                    carried_by,
                }
            }
        })
        .collect();

    Plan {
        request: request.clone(),
        items,
        volumes,
        stores,
        resolutions,
    }
}

const EXTERNAL_DB: &str =
    "marked external: it lives outside the deployment and the new instance reuses it, no migration needed";
const EXTERNAL_CONFIG: &str =
    "marked external: configuration loaded from files lives outside the deployment and the new instance reuses it";
const NOT_GIVEN_DB: &str = "not given: no connection to it was given, so it is left out";
const NOT_GIVEN_CONFIG: &str =
    "not given: no source of configuration was given, and the main database (pgsql) that holds it \
     is not dumped; the configuration stays with that database";

fn included(id: &str, kind: StoreKind, reason: &str) -> PlannedStore {
    PlannedStore {
        id: id.into(),
        kind,
        decision: Decision::Included,
        reason: reason.into(),
    }
}

fn skipped(id: &str, kind: StoreKind, reason: &str) -> PlannedStore {
    PlannedStore {
        id: id.into(),
        kind,
        decision: Decision::Skipped,
        reason: reason.into(),
    }
}

fn describe_recreatable(r: Recreatable, note: &str) -> String {
    match (r, note.is_empty()) {
        (Recreatable::Partly(cond), _) => format!("partly ({cond})"),
        (r, true) => r.answer().to_string(),
        (r, false) => format!("{} ({note})", r.answer()),
    }
}

/// A database is recreatable only when every catalog row it carries is, after
/// the resolutions: the main database never is, codeintel-db is kept because
/// code graph data is not regenerated by default.
fn database_recreatable(carrier: Carrier) -> bool {
    !matches!(
        carrier,
        Carrier::Database(Database::Frontend) | Carrier::Database(Database::CodeIntel)
    )
}

fn database_reason(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Database(Database::Frontend) => "the main database: not recreatable, most of the state lives here",
        Carrier::Database(Database::CodeIntel) => "code graph data is not recreatable by default (see resolution: code graph data vs codeintel-db volume)",
        _ => "code insights data: recreatable, included because the option asks for all Postgres data",
    }
}

/// What leaving a database out loses, drawn from the catalog.
fn database_loss(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Database(Database::CodeIntel) => {
            "code graph data is not recreatable by default (see resolution: code graph data vs codeintel-db volume): give its connection to keep it"
        }
        Carrier::Database(Database::CodeInsights) => "code insights data is recreatable: the new instance recomputes it",
        _ => "the main database is not recreatable",
    }
}

fn plan_volume(request: &PlanRequest, v: &DeploymentVolume) -> PlannedVolume {
    let make = |decision, method, reason: String| PlannedVolume {
        name: v.name.into(),
        decision,
        method,
        reason,
    };
    if request.external.contains(v.name) {
        return make(
            Decision::Skipped,
            VolumeMethod::None,
            EXTERNAL_DB.replace("it lives", "the volume's data lives"),
        );
    }
    match v.content {
        VolumeContent::PostgresData(carrier) => {
            let unit = match carrier {
                Carrier::Database(Database::CodeIntel) => unit_ids::CODEINTEL,
                Carrier::Database(Database::CodeInsights) => unit_ids::CODEINSIGHTS,
                _ => unit_ids::PGSQL,
            };
            if request.external.contains(unit) {
                make(Decision::Skipped, VolumeMethod::None, format!("its database {unit} is marked external"))
            } else if !request.databases_stopped && unit != unit_ids::PGSQL && request.not_given.contains(unit) {
                make(Decision::Skipped, VolumeMethod::None, format!("its database {unit} is not given, so it is left out"))
            } else if request.databases_stopped {
                make(Decision::Included, VolumeMethod::Archive,
                    "PostgreSQL data directory archived as files: the caller states the database is stopped".into())
            } else if request.skip_recreatable && database_recreatable(carrier) {
                make(Decision::Skipped, VolumeMethod::None, format!("recreatable ({}); skipped as asked", note_or(v)))
            } else {
                make(Decision::Included, VolumeMethod::LogicalDump(unit.into()),
                    format!("a live PostgreSQL data directory copied as files is not a backup: carried by the logical dump of {unit} (state the database is stopped to archive the directory)"))
            }
        }
        VolumeContent::Cache => make(Decision::Skipped, VolumeMethod::None, format!("{}: nothing to keep", v.note)),
        VolumeContent::Prometheus if request.skip_recreatable => make(Decision::Included, VolumeMethod::Archive,
            format!("kept although the volume table says recreatable: metric history is not recreatable (see resolution: {PROMETHEUS_TOPIC}); a live TSDB copy can miss the head block, give the Prometheus URL to use its snapshot API")),
        VolumeContent::Prometheus => make(Decision::Included, VolumeMethod::Archive,
            "metric history is not recreatable; a live TSDB copy can miss the head block, give the Prometheus URL to use its snapshot API".into()),
        _ if request.skip_recreatable && v.recreatable => make(Decision::Skipped, VolumeMethod::None,
            format!("recreatable ({}); skipped as asked", note_or(v))),
        VolumeContent::Redis => make(Decision::Included, VolumeMethod::Archive,
            "Redis writes its snapshot by rename, so a live copy is safe; the append-only file may end mid-record, which Redis repairs on load".into()),
        _ => make(Decision::Included, VolumeMethod::Archive,
            format!("persistent volume{}", if v.recreatable { " (recreatable, kept because the option asks for all data)" } else { "" })),
    }
}

fn note_or(v: &DeploymentVolume) -> &'static str {
    if v.note.is_empty() {
        "per the deployment volume table"
    } else {
        v.note
    }
}

/// The stores or volumes that could carry a catalog row.
fn carriers_of(
    id: &str,
    carrier: Carrier,
    request: &PlanRequest,
    stores: &[PlannedStore],
    volumes: &[PlannedVolume],
) -> Vec<String> {
    let _ = stores;
    match carrier {
        Carrier::Configuration => {
            let mut v = vec![unit_ids::CONFIG.to_string()];
            if request.option != BackupOption::ConfigOnly {
                v.push(unit_ids::PGSQL.into());
            }
            v
        }
        Carrier::Database(Database::Frontend) => vec![unit_ids::PGSQL.into()],
        Carrier::Database(Database::CodeIntel) => vec![unit_ids::CODEINTEL.into()],
        Carrier::Database(Database::CodeInsights) => vec![unit_ids::CODEINSIGHTS.into()],
        Carrier::Volume => volumes
            .iter()
            .filter(|v| {
                request
                    .deployment
                    .volume(&v.name)
                    .is_some_and(|dv| dv.catalog.contains(&id))
            })
            .map(|v| v.name.clone())
            .collect(),
    }
}

fn resolutions() -> Vec<Resolution> {
    vec![
        Resolution {
            topic: PROMETHEUS_TOPIC.into(),
            facts: vec![
                "data on disk: Prometheus metrics are not recreatable".into(),
                "Kubernetes volumes: the prometheus volume is recreatable".into(),
            ],
            decision: "the volume table answers whether the deployment starts without the volume (it does, empty); \
                the data row answers whether the metric history comes back (it does not). The planner keeps \
                the prometheus volume even when recreatable stores are skipped; mark it external to leave it out."
                .into(),
        },
        Resolution {
            topic: CODE_GRAPH_TOPIC.into(),
            facts: vec![
                "data on disk: code graph data is not recreatable (only by re-running indexing and uploads; not by default)".into(),
                "Kubernetes volumes: codeintel-db is recreatable, but worth migrating".into(),
            ],
            decision: "code graph data comes back only if every repository is re-indexed and uploaded again, \
                which does not happen by default: the planner treats codeintel-db as not recreatable and keeps it \
                even when recreatable stores are skipped; mark it external to leave it out."
                .into(),
        },
    ]
}
