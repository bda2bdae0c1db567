//! The one way Inlet commits to a table: every commit (a compaction, an optimize, with or
//! without a schema change) carries the table-writer `txn` and is checked against each commit
//! that landed since its snapshot by Inlet's own rule, not delta-rs' alone.
//!
//! delta-rs' conflict checker treats a `remove` with `dataChange = false` as a physical
//! reshuffle that conflicts with nothing, so two optimizes that rewrote the same small files
//! would both commit and every row they copied would be in the table twice. Here delta-rs gets
//! no retries: when the table moved, each new commit is read and weighed by
//! [`rebase_refusal`], which refuses whatever could lose or double a row (the same file
//! removed by both, whatever its flag; another compaction when this one adds sources; a
//! metadata or protocol change), and otherwise the commit is tried again on the new snapshot
//! with the next `txn` version. For writers that leave the check to delta-rs, the `txn` makes
//! an earlier release's compaction conflict with any of these commits, and an optimize's
//! [`TableCommit::fenced`] metadata any optimize.

use std::collections::HashSet;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::DeltaTableError;
use deltalake::kernel::transaction::{CommitBuilder, CommitConflictError, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Metadata, Transaction};
use deltalake::logstore::get_actions;
use deltalake::protocol::DeltaOperation;
use object_store::{ObjectStore, ObjectStoreExt};
use percent_encoding::percent_decode_str;

use crate::commit::table::log_cleanup_due;
use crate::error::{Error, Result};
use crate::layout::{COMPACTOR_APP_ID, SOURCES_KEY, commit_file};

/// Attempts before a commit that keeps meeting newer harmless commits gives up (the run fails
/// and is retried whole).
const ATTEMPTS: usize = 20;

/// A commit to make: its actions, its operation and the `commitInfo` fields it adds.
pub(crate) struct TableCommit {
    pub actions: Vec<Action>,
    pub operation: DeltaOperation,
    pub metadata: Vec<(String, serde_json::Value)>,
}

impl TableCommit {
    /// `self` with the table's unchanged `metadata` added. delta-rs makes a writer that loses
    /// to a commit with a `metaData` action fail (`MetadataChanged`) whatever else it holds,
    /// so a rewrite fenced so stops any concurrent optimize that leaves the check to delta-rs
    /// (an earlier release's, delta-rs' own), which would otherwise rewrite the same files
    /// again beside it. Inlet's own writers see the same metadata and carry on.
    pub fn fenced(mut self, metadata: Metadata) -> Self {
        self.actions.insert(0, Action::Metadata(metadata));
        self
    }

    /// Whether it commits new sources (a compaction), which another compaction may also hold.
    fn adds_sources(&self) -> bool {
        self.metadata.iter().any(|(key, _)| key == SOURCES_KEY)
    }

    /// The files it removes, decoded the same way whoever wrote the log encoded them.
    fn removed_paths(&self) -> HashSet<String> {
        self.actions
            .iter()
            .filter_map(|action| match action {
                Action::Remove(remove) => Some(normalized(&remove.path)),
                _ => None,
            })
            .collect()
    }
}

fn normalized(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

/// Why `ours`, planned on a table whose metadata was `read`, cannot be committed after `winner`
/// (commit `version`'s actions), if it cannot. Pure: the whole rule, tested without a table.
pub(crate) fn rebase_refusal(
    ours: &TableCommit,
    read: &Metadata,
    version: u64,
    winner: &[Action],
) -> Option<CommitConflictError> {
    let removed = ours.removed_paths();
    for action in winner {
        match action {
            // The same metadata again: an optimize's fence against other writers (see
            // `TableCommit::fenced`), which changes nothing.
            Action::Metadata(metadata) if metadata == read => {}
            Action::Metadata(_) => {
                tracing::warn!(version, "commit {version} changed the table's metadata: this commit conflicts");
                return Some(CommitConflictError::MetadataChanged);
            }
            Action::Protocol(_) => {
                return Some(CommitConflictError::ProtocolChanged(format!("by commit {version}")));
            }
            Action::Remove(remove) if removed.contains(&normalized(&remove.path)) => {
                tracing::warn!(version, file = %remove.path, "commit {version} removed a file this commit rewrites");
                return Some(CommitConflictError::ConcurrentDeleteDelete);
            }
            Action::CommitInfo(info) if ours.adds_sources() && info.info.contains_key(SOURCES_KEY) => {
                tracing::warn!(version, "commit {version} is another compaction: this one conflicts");
                return Some(CommitConflictError::ConcurrentTransaction);
            }
            _ => {}
        }
    }
    None
}

/// Commits `commit` to `table` (whose state is the snapshot the commit was planned from) and
/// returns its version; a conflict comes back as delta-rs' own [`CommitConflictError`].
pub(crate) async fn commit_exclusive(table: &mut DeltaTable, commit: &TableCommit) -> Result<u64> {
    let store = table.object_store();
    for _ in 0..ATTEMPTS {
        let snapshot = table.snapshot()?.clone();
        let read = snapshot.version();
        let read_metadata = snapshot.metadata().clone();
        let writes = snapshot.transaction_version(table.log_store().as_ref(), COMPACTOR_APP_ID).await?.unwrap_or(0);
        let properties = CommitProperties::default()
            .with_metadata(commit.metadata.iter().cloned())
            .with_application_transaction(Transaction::new(COMPACTOR_APP_ID, writes + 1))
            // Newer commits are weighed below, by Inlet's rule; delta-rs must not rebase past them.
            .with_max_retries(0)
            .with_cleanup_expired_logs(Some(log_cleanup_due(table).await?));
        let attempt = CommitBuilder::from(properties)
            .with_actions(commit.actions.clone())
            .build(Some(&snapshot), table.log_store(), commit.operation.clone())
            .await;
        match attempt {
            Ok(committed) => {
                let version = committed.version();
                table.state = Some(committed.snapshot());
                return Ok(version);
            }
            Err(err) if lost_race(&err) => {
                table.update_state().await?;
                let latest = table.version().unwrap_or(read);
                for version in read + 1..=latest {
                    let winner = commit_actions(&store, version).await?;
                    if let Some(conflict) = rebase_refusal(commit, &read_metadata, version, &winner) {
                        let source = TransactionError::CommitConflict(conflict);
                        return Err(Error::Delta(DeltaTableError::Transaction { source }));
                    }
                }
                tracing::info!(read, latest, "table moved on with harmless commits: committing on top of them");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::Delta(DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(ATTEMPTS as i32) }))
}

/// Whether a commit failed only because another one took its version.
fn lost_race(err: &DeltaTableError) -> bool {
    matches!(
        err,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(_) }
    )
}

/// The actions of commit `version`, read from the log.
async fn commit_actions(store: &Arc<dyn ObjectStore>, version: u64) -> Result<Vec<Action>> {
    let bytes = store.get(&commit_file(version)).await?.bytes().await?;
    Ok(get_actions(version, &bytes)?)
}

#[cfg(test)]
mod tests {
    use deltalake::kernel::{Add, CommitInfo, Remove};

    use super::*;

    fn remove(path: &str, data_change: bool) -> Action {
        Action::Remove(Remove { path: path.into(), data_change, ..Remove::default() })
    }

    fn add(path: &str) -> Action {
        Action::Add(Add { path: path.into(), ..Add::default() })
    }

    fn info(key: &str) -> Action {
        let mut info = CommitInfo::default();
        info.info.insert(key.into(), serde_json::json!([]));
        Action::CommitInfo(info)
    }

    /// Table metadata with long columns `names`.
    fn metadata(names: &[&str]) -> Metadata {
        use deltalake::kernel::{DataType, StructField, StructType};
        let schema = StructType::try_new(names.iter().map(|n| StructField::new(*n, DataType::LONG, true))).unwrap();
        let metadata = deltalake::kernel::new_metadata(&schema, Vec::<String>::new(), Vec::<(String, String)>::new());
        metadata.unwrap()
    }

    /// The metadata the commits under test read (one instance: ids and times are fixed).
    fn read() -> Metadata {
        static READ: std::sync::OnceLock<Metadata> = std::sync::OnceLock::new();
        READ.get_or_init(|| metadata(&["id"])).clone()
    }

    fn commit(actions: Vec<Action>, metadata: &[&str]) -> TableCommit {
        TableCommit {
            actions,
            operation: DeltaOperation::Optimize { predicate: None, target_size: 1 },
            metadata: metadata.iter().map(|key| (key.to_string(), serde_json::json!([]))).collect(),
        }
    }

    #[test]
    fn two_rewrites_of_the_same_file_conflict_whatever_their_data_change_flag() {
        let optimize = commit(vec![remove("date=2026-05-16/a%20b.parquet", false), add("c.parquet")], &[]);
        for data_change in [false, true] {
            let winner = [remove("date=2026-05-16/a b.parquet", data_change), add("d.parquet")];
            assert!(matches!(
                rebase_refusal(&optimize, &read(), 3, &winner),
                Some(CommitConflictError::ConcurrentDeleteDelete)
            ));
        }
        let elsewhere = [remove("date=2026-05-16/other.parquet", false), add("e.parquet")];
        assert!(rebase_refusal(&optimize, &read(), 3, &elsewhere).is_none(), "other files: committed on top");
    }

    #[test]
    fn a_compaction_conflicts_with_another_compaction_but_not_with_appends_or_optimizes() {
        let compaction = commit(vec![add("new.parquet")], &[SOURCES_KEY]);
        let other = [info(SOURCES_KEY), add("theirs.parquet")];
        assert!(matches!(
            rebase_refusal(&compaction, &read(), 4, &other),
            Some(CommitConflictError::ConcurrentTransaction)
        ));
        let optimize = [info(crate::layout::OPTIMIZED_KEY), remove("old.parquet", false), add("big.parquet")];
        assert!(rebase_refusal(&compaction, &read(), 4, &optimize).is_none());
        let foreign_append = [info("engineInfo"), add("spark.parquet")];
        assert!(rebase_refusal(&compaction, &read(), 4, &foreign_append).is_none());
        // An optimize does not mind a compaction that only added files.
        let rewrite = commit(vec![remove("old.parquet", false), add("big.parquet")], &[]);
        assert!(rebase_refusal(&rewrite, &read(), 4, &other).is_none());
    }

    #[test]
    fn a_schema_or_protocol_change_in_between_is_a_conflict() {
        let compaction = commit(vec![add("new.parquet")], &[SOURCES_KEY]);
        let evolved = [Action::Metadata(metadata(&["id", "country"]))];
        assert!(matches!(
            rebase_refusal(&compaction, &read(), 5, &evolved),
            Some(CommitConflictError::MetadataChanged)
        ));
        // An optimize's fence: the metadata this commit read, unchanged.
        let fence = [Action::Metadata(read()), remove("old.parquet", false), add("big.parquet")];
        assert!(rebase_refusal(&compaction, &read(), 5, &fence).is_none());
    }
}
