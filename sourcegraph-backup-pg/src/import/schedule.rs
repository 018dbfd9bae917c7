//! The restore's work graph: table loads, post-data steps and `ANALYZE`s on N connections.
//!
//! A table's indexes and primary/unique/check constraints start as soon as its data is in
//! (while other tables still load), so both cores stay busy until the last index is built.
//! Steps that may touch other tables (foreign keys, triggers, rules, policies, views'
//! refreshes) wait until every table is loaded; each step also waits for its `depends_on`.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::layout::TableRecord;
use crate::schema::{ObjectKind, PostDataStep};

/// One unit of restore work.
#[derive(Debug, Clone)]
pub(crate) enum Task {
    /// Load a table (index into the table records).
    Load(usize),
    /// Run a post-data step (index into the steps).
    Step(usize),
    /// `ANALYZE` a table (index into the table records).
    Analyze(usize),
}

/// Kinds that only read and lock their own table, so they can run once it is loaded.
fn table_local(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::PrimaryKey
            | ObjectKind::UniqueConstraint
            | ObjectKind::ExclusionConstraint
            | ObjectKind::Index
            | ObjectKind::CheckConstraint
            | ObjectKind::Statistics
            | ObjectKind::ReplicaIdentity
            | ObjectKind::ClusterOn
    )
}

/// Largest tables first, like the loads.
fn order_for_analyze(tables: &[TableRecord]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(tables[*i].bytes));
    order
}

/// The scheduler's state; guarded by a mutex in the importer.
#[derive(Debug)]
pub(crate) struct Schedule {
    loads: VecDeque<usize>,
    loads_left: usize,
    loaded: HashSet<String>,
    steps: Vec<PostDataStep>,
    /// Steps not started, in dependency order.
    waiting: Vec<usize>,
    finished_steps: HashSet<String>,
    steps_left: usize,
    /// Tables whose `ANALYZE` has not started.
    analyze: Vec<usize>,
    analyze_enabled: bool,
    /// Table identities with a table-local step still waiting or running: their
    /// `ANALYZE` waits so expression indexes get statistics too.
    pending_local: HashMap<String, usize>,
    running: usize,
    /// Table identities that have data records.
    data_tables: HashSet<String>,
    /// The identity of each table record, by index.
    analyze_ids: Vec<String>,
    /// Set when a task failed: nothing new starts.
    pub failed: bool,
}

/// What a worker should do next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Run this task.
    Run(Task),
    /// Nothing runnable now; wait for another task to finish.
    Wait,
    /// Everything is done (or failed).
    Done,
}

impl Schedule {
    /// Plans loads (largest first), steps and analyzes.
    pub(crate) fn new(tables: &[TableRecord], steps: Vec<PostDataStep>, analyze: bool) -> Self {
        let mut order: Vec<usize> = (0..tables.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(tables[*i].bytes));
        let steps_left = steps.len();
        let mut pending_local = HashMap::new();
        for s in &steps {
            if let Some(t) = s.table.as_ref().filter(|_| table_local(s.kind)) {
                *pending_local.entry(t.clone()).or_insert(0) += 1;
            }
        }
        Schedule {
            loads_left: order.len(),
            loads: order.into(),
            loaded: HashSet::new(),
            waiting: (0..steps.len()).collect(),
            steps,
            finished_steps: HashSet::new(),
            steps_left,
            analyze: order_for_analyze(tables),
            analyze_enabled: analyze,
            pending_local,
            running: 0,
            data_tables: tables.iter().map(|t| t.identity.clone()).collect(),
            analyze_ids: tables.iter().map(|t| t.identity.clone()).collect(),
            failed: false,
        }
    }

    /// The step with index `i`.
    pub(crate) fn step(&self, i: usize) -> &PostDataStep {
        &self.steps[i]
    }

    fn ready(&self, s: &PostDataStep) -> bool {
        let all_loaded = self.loads_left == 0;
        let table_ok = match &s.table {
            Some(t) if table_local(s.kind) && self.data_tables.contains(t) => self.loaded.contains(t),
            _ => all_loaded,
        };
        table_ok && s.depends_on.iter().all(|d| self.finished_steps.contains(d))
    }

    /// Picks the next task: a ready post-data step first (index builds are the long pole),
    /// then a load, then the `ANALYZE` of a table whose data and own indexes are in, so
    /// analyzes fill idle connections instead of forming a serial tail.
    pub(crate) fn next(&mut self) -> Next {
        if self.failed {
            return if self.running == 0 { Next::Done } else { Next::Wait };
        }
        if let Some(pos) = self.waiting.iter().position(|i| self.ready(&self.steps[*i])) {
            let i = self.waiting.remove(pos);
            self.running += 1;
            return Next::Run(Task::Step(i));
        }
        if let Some(i) = self.loads.pop_front() {
            self.running += 1;
            return Next::Run(Task::Load(i));
        }
        if self.analyze_enabled {
            if let Some(pos) = self.analyze.iter().position(|i| self.analyzable(i)) {
                let i = self.analyze.remove(pos);
                self.running += 1;
                return Next::Run(Task::Analyze(i));
            }
        }
        if self.running == 0 {
            if !self.waiting.is_empty() {
                // Unsatisfiable dependencies cannot happen with a well-formed dump; run the
                // rest in order rather than hang.
                let i = self.waiting.remove(0);
                self.running += 1;
                return Next::Run(Task::Step(i));
            }
            return Next::Done;
        }
        Next::Wait
    }

    fn analyzable(&self, i: &usize) -> bool {
        let id = &self.analyze_ids[*i];
        self.loaded.contains(id) && self.pending_local.get(id).is_none_or(|n| *n == 0)
    }

    /// Records a finished task.
    pub(crate) fn finish(&mut self, task: &Task, tables: &[TableRecord]) {
        self.running = self.running.saturating_sub(1);
        match task {
            Task::Load(i) => {
                self.loads_left -= 1;
                self.loaded.insert(tables[*i].identity.clone());
            }
            Task::Step(i) => {
                self.steps_left -= 1;
                if let Some(t) = self.steps[*i]
                    .table
                    .as_ref()
                    .filter(|_| table_local(self.steps[*i].kind))
                {
                    if let Some(n) = self.pending_local.get_mut(t) {
                        *n = n.saturating_sub(1);
                    }
                }
                self.finished_steps.insert(self.steps[*i].identity.clone());
            }
            Task::Analyze(_) => {}
        }
    }

    /// Records a failed task: nothing new starts.
    pub(crate) fn fail(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.failed = true;
    }
}
