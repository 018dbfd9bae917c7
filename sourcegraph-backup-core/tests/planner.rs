//! The catalog carries data-stores.md exactly, and the planner's decisions
//! match the expectations encoded from it, row by row.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sourcegraph_backup_core::catalog::{Deployment, KUBERNETES_VOLUMES};
use sourcegraph_backup_core::plan::{plan, BackupOption, Decision, PlanRequest, VolumeMethod};
use sourcegraph_backup_core::CATALOG;

const DATA_STORES: &str = include_str!("data/data-stores.md");
const EXPECTATIONS: &str = include_str!("data/plan-expectations.tsv");

/// Rows of the markdown table that follows `heading`: cells, trimmed.
fn table_after(heading: &str) -> Vec<Vec<String>> {
    let start = DATA_STORES
        .find(heading)
        .unwrap_or_else(|| panic!("heading {heading:?} missing"));
    DATA_STORES[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn vendored_table_is_current() {
    // CI lays shared/ beside the checkout; when it is there, the vendored copy must match it.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mission/data-stores.md");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        assert_eq!(
            text,
            DATA_STORES,
            "tests/data/data-stores.md differs from {}",
            shared.display()
        );
    }
}

#[test]
fn catalog_carries_every_row_exactly() {
    let mut rows = Vec::new();
    for heading in ["## Configuration JSON", "## Main database", "## Data on disk"] {
        rows.extend(table_after(heading));
    }
    assert_eq!(rows.len(), 20, "rows of the three tables");
    for row in &rows {
        let [item, recreatable, note] = &row[..] else {
            panic!("row {row:?}")
        };
        let entry = CATALOG
            .iter()
            .find(|e| e.item == item)
            .unwrap_or_else(|| panic!("catalog lacks row {item:?}"));
        assert_eq!(entry.recreatable.answer(), recreatable, "{item}");
        assert_eq!(entry.note, note, "{item}");
    }
    // Ephemeral data is prose, not a table: "Session data and some usage statistics. All recreatable."
    assert!(DATA_STORES.contains("Session data and some usage statistics. All recreatable."));
    let redis = CATALOG.iter().find(|e| e.id == "redis").unwrap();
    assert!(redis.recreatable.is_yes());
    assert_eq!(CATALOG.len(), rows.len() + 1, "no row the file lacks");

    let volumes = table_after("## Kubernetes persistent volumes");
    assert_eq!(volumes.len(), KUBERNETES_VOLUMES.len());
    for row in &volumes {
        let [name, recreatable, note] = &row[..] else {
            panic!("row {row:?}")
        };
        let v = KUBERNETES_VOLUMES
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no volume {name}"));
        assert_eq!(if v.recreatable { "yes" } else { "no" }, recreatable, "{name}");
        assert_eq!(v.note, note, "{name}");
    }
}

fn requests() -> Vec<PlanRequest> {
    let mut skip = PlanRequest::new(BackupOption::AllData, Deployment::Kubernetes);
    skip.skip_recreatable = true;
    let mut external = PlanRequest::new(BackupOption::AllData, Deployment::DockerCompose);
    external.external = ["pgsql".to_string(), "codeintel-db".to_string()].into();
    vec![
        PlanRequest::new(BackupOption::ConfigOnly, Deployment::Kubernetes),
        PlanRequest::new(BackupOption::AllPostgres, Deployment::Kubernetes),
        PlanRequest::new(BackupOption::AllData, Deployment::Kubernetes),
        PlanRequest::new(BackupOption::AllData, Deployment::DockerCompose),
        skip,
        external,
    ]
}

#[test]
fn planner_matches_expectations_row_by_row() {
    let requests = requests();
    let plans: Vec<_> = requests.iter().map(plan).collect();
    let mut seen = Vec::new();
    for line in EXPECTATIONS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cells: Vec<&str> = line.split('\t').collect();
        assert_eq!(cells.len(), 1 + plans.len(), "line {line:?}");
        let id = cells[0];
        seen.push(id);
        for (cell, p) in cells[1..].iter().zip(&plans) {
            let (want, substring) = cell.split_once(':').unwrap_or((cell, ""));
            let item = p.item(id).unwrap_or_else(|| panic!("plan lacks row {id}"));
            let want = if want == "I" {
                Decision::Included
            } else {
                Decision::Skipped
            };
            assert_eq!(item.decision, want, "{id} under {:?}: {}", p.request, item.reason);
            assert!(
                item.reason.contains(substring),
                "{id} under {:?}: reason {:?} lacks {substring:?}",
                p.request,
                item.reason
            );
            // Every reason is drawn from the catalog: it states the recreatable answer.
            assert!(item.reason.contains("recreatable: "), "{id}: {}", item.reason);
        }
    }
    for e in CATALOG {
        assert!(seen.contains(&e.id), "expectations lack catalog row {}", e.id);
    }
}

#[test]
fn disagreements_are_resolved_and_stated() {
    for p in requests().iter().map(plan) {
        let topics: Vec<_> = p.resolutions.iter().map(|r| r.topic.as_str()).collect();
        assert!(topics.iter().any(|t| t.contains("prometheus")), "{topics:?}");
        assert!(topics.iter().any(|t| t.contains("codeintel-db")), "{topics:?}");
    }
    let mut skip = PlanRequest::new(BackupOption::AllData, Deployment::Kubernetes);
    skip.skip_recreatable = true;
    let p = plan(&skip);
    let prom = p.volumes.iter().find(|v| v.name == "prometheus").unwrap();
    assert_eq!(prom.decision, Decision::Included);
    assert!(prom.reason.contains("resolution"), "{}", prom.reason);
    assert!(p.includes("codeintel-db"));
    assert!(!p.includes("gitserver") && !p.includes("redis-cache"));
    assert!(
        !p.includes("codeinsights-db"),
        "recreatable database skipped as asked"
    );
}

#[test]
fn live_database_volumes_use_the_logical_dump_unless_stopped() {
    for deployment in [Deployment::Kubernetes, Deployment::DockerCompose] {
        let p = plan(&PlanRequest::new(BackupOption::AllData, deployment));
        let pgsql = p.volumes.iter().find(|v| v.name == "pgsql").unwrap();
        assert_eq!(pgsql.method, VolumeMethod::LogicalDump("pgsql".into()));
        assert!(pgsql.reason.contains("not a backup"), "{}", pgsql.reason);
        assert!(
            p.includes("pgsql")
                && !p
                    .stores
                    .iter()
                    .any(|s| s.id == "pgsql" && s.kind == sourcegraph_backup_core::StoreKind::Volume)
        );

        let mut stopped = PlanRequest::new(BackupOption::AllData, deployment);
        stopped.databases_stopped = true;
        let p = plan(&stopped);
        let pgsql = p.volumes.iter().find(|v| v.name == "pgsql").unwrap();
        assert_eq!(pgsql.method, VolumeMethod::Archive);
        assert!(p.stores.iter().any(|s| s.id == "pgsql"
            && s.kind == sourcegraph_backup_core::StoreKind::Volume
            && s.decision == Decision::Included));
        assert!(p.stores.iter().any(|s| s.id == "pgsql"
            && s.kind == sourcegraph_backup_core::StoreKind::Postgres
            && s.decision == Decision::Skipped));
    }
}

#[test]
fn config_only_has_one_store() {
    let p = plan(&PlanRequest::new(
        BackupOption::ConfigOnly,
        Deployment::DockerCompose,
    ));
    let ids: Vec<_> = p.included_stores().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["config"]);
    assert!(p.volumes.is_empty());
}

#[test]
fn stores_not_given_are_left_out_unless_not_recreatable() {
    // Only the main database given: the other two are left out with the reason.
    let mut req = PlanRequest::new(BackupOption::AllPostgres, Deployment::DockerCompose);
    req.not_given = ["codeintel-db".to_string(), "codeinsights-db".to_string()].into();
    let p = plan(&req);
    assert!(p.includes("pgsql") && p.includes("config"));
    for id in ["codeintel-db", "codeinsights-db"] {
        let s = p.stores.iter().find(|s| s.id == id).unwrap();
        assert_eq!(s.decision, Decision::Skipped);
        assert!(s.reason.starts_with("not given"), "{}", s.reason);
    }
    assert!(p.item("code-graph-data").unwrap().reason.contains("not given"));
    assert_eq!(p.not_given().count(), 0);

    // The main database is not recreatable: it stays in the plan, for the caller to refuse.
    let mut req = PlanRequest::new(BackupOption::AllPostgres, Deployment::DockerCompose);
    req.not_given = ["pgsql".to_string(), "config".to_string()].into();
    let p = plan(&req);
    let refused: Vec<&str> = p.not_given().map(|s| s.id.as_str()).collect();
    assert_eq!(refused, ["config", "pgsql"]);

    // Marked external, the main database takes the configuration it holds with it.
    req.external = ["pgsql".to_string()].into();
    let p = plan(&req);
    assert_eq!(p.not_given().count(), 0);
    let config = p.stores.iter().find(|s| s.id == "config").unwrap();
    assert_eq!(config.decision, Decision::Skipped);
    assert!(config.reason.starts_with("not given"), "{}", config.reason);
    assert!(p.includes("codeintel-db"));
    // ... unless a source of configuration is given.
    req.not_given.remove("config");
    assert!(plan(&req).includes("config"));

    // Configuration only: configuration is the whole backup.
    let mut req = PlanRequest::new(BackupOption::ConfigOnly, Deployment::DockerCompose);
    req.not_given = ["config".to_string()].into();
    assert_eq!(plan(&req).not_given().count(), 1);

    // The database volumes of a database that is not given are left out too.
    let mut req = PlanRequest::new(BackupOption::AllData, Deployment::DockerCompose);
    req.not_given = ["codeinsights-db".to_string()].into();
    let p = plan(&req);
    let v = p.volumes.iter().find(|v| v.name == "codeinsights-db").unwrap();
    assert_eq!(v.decision, Decision::Skipped, "{}", v.reason);
}
