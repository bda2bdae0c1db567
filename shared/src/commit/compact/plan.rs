//! Planning a compaction: which converter batches are abandoned, which staged fragments to
//! merge now, and which copy of each source to commit from them. Pure functions of the staged
//! listing, the batch records, the load history, the policy and the time, so every decision is
//! tested without a store, and every rule that reads the clock is here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;

use crate::layout::staged_partition;
use crate::lineage::SourceId;
use crate::stage::fragment::{BatchState, FragmentInfo};

/// The staged fragments sorted by their batch's seal, before any batch is voided.
#[derive(Debug, Default)]
pub struct Seals {
    /// Fragments a run may take: of sealed batches, or needing no seal.
    pub ready: Vec<FragmentInfo>,
    /// Fragments of voided batches: garbage.
    pub void: Vec<FragmentInfo>,
    /// Fragments of batches not sealed yet, and not for long enough to be abandoned.
    pub waiting: Vec<FragmentInfo>,
    /// Batches unsealed for `abandon_after` or longer, with their fragments, by batch id: to void.
    pub abandoned: Vec<(String, Vec<FragmentInfo>)>,
}

/// Sorts `staged` by the seal `records` give their batches. A batch whose newest fragment was
/// staged `abandon_after` or longer before `now` without a seal is abandoned: its converter
/// failed its messages (or will, on finding its seal refused or its fragments gone). No clock
/// decides what is committed: a wrong one only makes a slow converter do its work again.
pub fn sort_by_seal(
    staged: Vec<FragmentInfo>,
    records: &HashMap<String, BatchState>,
    abandon_after: Duration,
    now: DateTime<Utc>,
) -> Seals {
    let mut seals = Seals::default();
    let mut unsealed = BTreeMap::<String, Vec<FragmentInfo>>::new();
    for info in staged {
        let batch = info.batch.clone().unwrap_or_default();
        match (info.awaits_seal, records.get(&batch)) {
            (false, _) | (true, Some(BatchState::Sealed)) => seals.ready.push(info),
            (true, Some(BatchState::Void)) => seals.void.push(info),
            (true, None) => unsealed.entry(batch).or_default().push(info),
        }
    }
    for (batch, fragments) in unsealed {
        let newest = fragments.iter().map(|f| f.staged_at).max().unwrap_or(now);
        if (now - newest).to_std().unwrap_or_default() < abandon_after {
            seals.waiting.extend(fragments);
        } else {
            seals.abandoned.push((batch, fragments));
        }
    }
    seals
}

/// When staged fragments are ready to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Age after which a fragment holding an incomplete copy of a source is taken to come from
    /// a converter that died (longer than the converter's timeout).
    pub abandon_after: Duration,
    /// A partition with fewer staged bytes than this waits for more...
    pub min_bytes: u64,
    /// ...until its oldest fragment is this old.
    pub freshness: Duration,
    /// Commit small, fresh partitions too (on-demand runs).
    pub force: bool,
    /// Only these partition directories (`date=2026-05-16`); all when `None`. A copy of a
    /// source with fragments outside them is left whole for a run that takes them all.
    pub partitions: Option<HashSet<String>>,
    /// Fragments held back whatever else holds: a column they carry cannot join the table.
    pub held: HashSet<Path>,
}

/// What a run will do with the staged fragments.
#[derive(Debug, Default)]
pub struct CompactionPlan {
    /// Fragments to merge and then delete.
    pub consume: Vec<FragmentInfo>,
    /// Fragments left for a later run...
    pub deferred: usize,
    /// ...which are these.
    pub deferred_fragments: Vec<FragmentInfo>,
    /// Age of the oldest staged fragment, in seconds: the freshness lag.
    pub oldest_staged_seconds: u64,
    /// Sources whose only copies are of sealed batches yet incomplete: a fragment of the batch
    /// was lost (unreadable, set aside). Their messages were answered, so no retry comes: they
    /// are held, never dropped, until the source is staged again (`inlet backfill`).
    pub stranded: Vec<SourceId>,
    /// For each source to commit, the converter batch whose copy is committed.
    keep: HashMap<SourceId, Option<String>>,
    /// Staged sources the table already holds.
    committed: HashSet<SourceId>,
}

impl CompactionPlan {
    /// The sources of `fragment` whose rows are committed from it; its other rows are
    /// duplicates (already committed, or committed from another copy).
    pub fn kept_in(&self, fragment: &FragmentInfo) -> HashSet<SourceId> {
        fragment
            .sources
            .iter()
            .filter(|source| self.keep.get(&source.id).is_some_and(|batch| *batch == fragment.batch))
            .map(|source| source.id.clone())
            .collect()
    }

    /// Whether `source`'s rows are in the table once this plan is committed (already, or from
    /// the copy the plan keeps): then a dropped copy of it is a duplicate, not a loss.
    pub fn loads(&self, source: &SourceId) -> bool {
        self.committed.contains(source) || self.keep.contains_key(source)
    }
}

/// Fragments staged before sources carried digests name a version by its ETag alone; one staged
/// since names the same version with its digest too. Gives the former the latter's digest, so
/// both are counted as copies of one source rather than two.
pub fn align_identities(staged: &mut [FragmentInfo]) {
    let mut digests: HashMap<(String, String), String> = HashMap::new();
    for id in staged.iter().flat_map(|fragment| &fragment.sources).map(|source| &source.id) {
        if let (Some(etag), Some(digest)) = (&id.etag, &id.digest) {
            digests.insert((id.uri.clone(), etag.clone()), digest.clone());
        }
    }
    if digests.is_empty() {
        return;
    }
    for source in staged.iter_mut().flat_map(|fragment| fragment.sources.iter_mut()) {
        if source.id.digest.is_none()
            && let Some(etag) = &source.id.etag
            && let Some(digest) = digests.get(&(source.id.uri.clone(), etag.clone()))
        {
            source.id.digest = Some(digest.clone());
        }
    }
}

/// Plans a run over `staged`, skipping sources `committed` says the table already holds.
pub fn plan_compaction(
    staged: Vec<FragmentInfo>,
    committed: impl Fn(&SourceId) -> bool,
    policy: &Policy,
    now: DateTime<Utc>,
) -> CompactionPlan {
    let age = |fragment: &FragmentInfo| (now - fragment.staged_at).to_std().unwrap_or_default();
    let oldest_staged_seconds = staged.iter().map(|f| age(f).as_secs()).max().unwrap_or(0);
    let Copies { keep, incomplete, committed } = choose_copies(&staged, committed, &policy.held);
    // An incomplete copy of a sealed batch lost a fragment: no retry comes, so it never ages
    // out (only a copy from before batches were sealed, whose converter may have died, does).
    let mut stranded: BTreeSet<SourceId> = BTreeSet::new();
    let mut deferred: Vec<bool> = staged
        .iter()
        .map(|fragment| {
            let abandoned = age(fragment) >= policy.abandon_after && !fragment.awaits_seal;
            let waiting = fragment.sources.iter().filter(|source| incomplete.contains(&source.id));
            let mut waits = false;
            for source in waiting {
                waits = true;
                if fragment.awaits_seal {
                    stranded.insert(source.id.clone());
                }
            }
            policy.held.contains(&fragment.path) || (waits && !abandoned)
        })
        .collect();
    if let Some(wanted) = &policy.partitions {
        for (fragment, deferred) in staged.iter().zip(deferred.iter_mut()) {
            *deferred |= !wanted.contains(staged_partition(&fragment.path));
        }
    }
    if !policy.force {
        defer_small_partitions(&staged, &mut deferred, policy, age);
    }
    defer_whole_copies(&staged, &mut deferred, &keep, &committed);
    let (deferred, consume): (Vec<_>, Vec<_>) = staged.into_iter().zip(deferred).partition(|(_, deferred)| *deferred);
    let consume = consume.into_iter().map(|(f, _)| f).collect();
    let deferred_fragments: Vec<FragmentInfo> = deferred.into_iter().map(|(f, _)| f).collect();
    CompactionPlan {
        consume,
        deferred: deferred_fragments.len(),
        deferred_fragments,
        oldest_staged_seconds,
        stranded: stranded.into_iter().collect(),
        keep,
        committed,
    }
}

/// One batch's copy of a source.
#[derive(Debug, Default)]
struct StagedCopy {
    rows: u64,
    /// Its fragments wait for their batch's seal (written since batches were sealed).
    sealed: bool,
    /// Its converter found the object bad after staging part of it.
    failed: bool,
}

/// A batch's copy of a source, and whether it is complete.
type JudgedCopy<'a> = (&'a Option<String>, bool);

/// What [`choose_copies`] found.
struct Copies {
    /// For every source not yet committed, the batch whose complete copy to commit.
    keep: HashMap<SourceId, Option<String>>,
    /// The sources no batch has staged completely yet.
    incomplete: HashSet<SourceId>,
    /// The staged sources the table already holds.
    committed: HashSet<SourceId>,
}

/// Held fragments (`held`) hold no copy: their rows cannot be committed, so another copy wins.
fn choose_copies(staged: &[FragmentInfo], committed: impl Fn(&SourceId) -> bool, held: &HashSet<Path>) -> Copies {
    // Rows per (source, batch), and each source's expected total.
    let mut copies: HashMap<&SourceId, BTreeMap<&Option<String>, StagedCopy>> = HashMap::new();
    let mut totals: HashMap<&SourceId, u64> = HashMap::new();
    for fragment in staged.iter().filter(|fragment| !held.contains(&fragment.path)) {
        for source in &fragment.sources {
            let copy = copies.entry(&source.id).or_default().entry(&fragment.batch).or_default();
            copy.rows += source.rows;
            copy.sealed |= fragment.awaits_seal;
            copy.failed |= source.failed;
            if let Some(total) = source.total_rows {
                totals.insert(&source.id, total);
            }
        }
    }
    let mut loaded = HashSet::new();
    // Per source not committed, its batches' copies and whether each is complete. A failed
    // copy is never complete (nor waited for); a sealed batch's copy is complete only once a
    // total says so, since a large object's fragments are staged before its total is known.
    let mut judged: Vec<(&SourceId, Vec<JudgedCopy>)> = Vec::new();
    for (id, batches) in copies {
        if committed(id) {
            loaded.insert(id.clone());
            continue;
        }
        if batches.values().all(|copy| copy.failed) {
            continue;
        }
        let complete = |copy: &StagedCopy| match totals.get(id) {
            _ if copy.failed => false,
            Some(total) => copy.rows >= *total,
            None => !copy.sealed,
        };
        judged.push((id, batches.iter().map(|(batch, copy)| (*batch, complete(copy))).collect()));
    }
    let incomplete: HashSet<SourceId> = judged
        .iter()
        .filter(|(_, copies)| copies.iter().all(|(_, complete)| !complete))
        .map(|(id, _)| (*id).clone())
        .collect();
    // Batches that also hold an incomplete copy wait with it: a complete copy elsewhere is
    // preferred, so that one stuck batch-mate does not hold back a source another copy can
    // commit now. Otherwise the first complete copy wins (batch ids are random: "first" is
    // just stable).
    let waiting: HashSet<&Option<String>> = judged
        .iter()
        .filter(|(id, _)| incomplete.contains(*id))
        .flat_map(|(_, copies)| copies.iter().map(|(batch, _)| *batch))
        .collect();
    let mut keep = HashMap::new();
    for (id, copies) in &judged {
        let complete = || copies.iter().filter(|(_, complete)| *complete).map(|(batch, _)| *batch);
        if let Some(batch) = complete().find(|batch| !waiting.contains(batch)).or_else(|| complete().next()) {
            keep.insert((*id).clone(), batch.clone());
        }
    }
    Copies { keep, incomplete, committed: loaded }
}

/// Small partitions wait to grow into a decent file, but never past the freshness bound.
fn defer_small_partitions(
    staged: &[FragmentInfo],
    deferred: &mut [bool],
    policy: &Policy,
    age: impl Fn(&FragmentInfo) -> Duration,
) {
    let mut partitions: BTreeMap<&str, (u64, Duration)> = BTreeMap::new();
    for fragment in staged {
        let entry = partitions.entry(staged_partition(&fragment.path)).or_default();
        entry.0 += fragment.size;
        entry.1 = entry.1.max(age(fragment));
    }
    for (fragment, deferred) in staged.iter().zip(deferred.iter_mut()) {
        let (bytes, oldest) = partitions[staged_partition(&fragment.path)];
        if bytes < policy.min_bytes && oldest < policy.freshness {
            *deferred = true;
        }
    }
}

/// A kept copy is committed whole or not at all: deferring one of its fragments defers every
/// fragment of that copy (and, in turn, the copies those hold). And while a source's kept copy
/// waits, its other copies wait too: they are deleted only by the run that commits it (or
/// once the table holds the source), never before.
fn defer_whole_copies(
    staged: &[FragmentInfo],
    deferred: &mut [bool],
    keep: &HashMap<SourceId, Option<String>>,
    committed: &HashSet<SourceId>,
) {
    loop {
        let held: HashSet<(&SourceId, &Option<String>)> = staged
            .iter()
            .zip(deferred.iter())
            .filter(|(_, deferred)| **deferred)
            .flat_map(|(fragment, _)| fragment.sources.iter().map(|s| (&s.id, &fragment.batch)))
            .collect();
        let kept_waits =
            |id: &SourceId| !committed.contains(id) && keep.get(id).is_some_and(|batch| held.contains(&(id, batch)));
        let mut changed = false;
        for (fragment, deferred) in staged.iter().zip(deferred.iter_mut()) {
            let waits = fragment.sources.iter().any(|s| held.contains(&(&s.id, &fragment.batch)) || kept_waits(&s.id));
            if !*deferred && waits {
                *deferred = true;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::path::Path;

    use super::*;
    use crate::lineage::FragmentSource;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-16T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn id(key: &str) -> SourceId {
        SourceId { uri: format!("s3://raw/{key}"), etag: Some("e1".into()), digest: None }
    }

    /// A fragment of `batch`, `seconds_old`, in `partition`, holding `(key, rows, total)` sources.
    fn fragment(batch: &str, partition: &str, seconds_old: i64, sources: &[(&str, u64, u64)]) -> FragmentInfo {
        let name = format!("{batch}-{}.parquet", sources.iter().map(|s| s.0).collect::<Vec<_>>().join("+"));
        let path = match partition {
            "" => Path::from(format!("_inlet/fragments/{name}")),
            dir => Path::from(format!("_inlet/fragments/{dir}/{name}")),
        };
        FragmentInfo {
            path,
            size: 1000,
            staged_at: now() - chrono::Duration::seconds(seconds_old),
            sources: sources
                .iter()
                .map(|(key, rows, total)| FragmentSource {
                    id: id(key),
                    rows: *rows,
                    total_rows: Some(*total),
                    failed: false,
                })
                .collect(),
            batch: Some(batch.into()),
            awaits_seal: false,
            fields: arrow_schema::Fields::empty(),
        }
    }

    #[test]
    fn a_failed_copy_is_dropped_at_once_and_a_sealed_copy_waits_for_its_total() {
        // Batch b1 staged part of a large object a, then found it damaged and marked it failed.
        let mut failed = fragment("b1", "", 10, &[("a", 5, 0), ("b", 2, 2)]);
        failed.awaits_seal = true;
        failed.sources[0].total_rows = None;
        failed.sources[0].failed = true;
        // Batch b2 staged rows of c, and no fragment states c's total.
        let mut untold = fragment("b2", "", 10, &[("c", 4, 0)]);
        untold.awaits_seal = true;
        untold.sources[0].total_rows = None;
        let plan = plan_compaction(vec![failed, untold], |_| false, &eager(), now());
        assert_eq!(plan.consume.len(), 1, "the failed copy does not hold back its fragment");
        assert_eq!(plan.kept_in(&plan.consume[0]), HashSet::from([id("b")]), "and is never committed");
        assert_eq!(plan.deferred, 1, "a sealed copy with no total is not taken for complete");
    }

    fn eager() -> Policy {
        Policy {
            abandon_after: Duration::from_secs(900),
            min_bytes: 0,
            freshness: Duration::ZERO,
            force: false,
            partitions: None,
            held: HashSet::new(),
        }
    }

    fn consumed(plan: &CompactionPlan) -> Vec<String> {
        plan.consume.iter().map(|f| f.path.filename().unwrap().to_string()).collect()
    }

    #[test]
    fn committed_sources_are_consumed_but_not_kept() {
        let staged = vec![fragment("b1", "", 5, &[("a", 10, 10)]), fragment("b1", "", 5, &[("b", 2, 2)])];
        let plan = plan_compaction(staged, |source| *source == id("a"), &eager(), now());
        assert_eq!(plan.consume.len(), 2, "a committed source's fragment is consumed, to be deleted");
        assert!(plan.kept_in(&plan.consume[0]).is_empty());
        assert_eq!(plan.kept_in(&plan.consume[1]), HashSet::from([id("b")]));
        assert_eq!((plan.deferred, plan.oldest_staged_seconds), (0, 5));
    }

    #[test]
    fn one_complete_copy_of_a_source_is_kept_and_the_other_dropped() {
        let staged = vec![fragment("b1", "", 5, &[("a", 10, 10)]), fragment("b2", "", 5, &[("a", 10, 10)])];
        let plan = plan_compaction(staged, |_| false, &eager(), now());
        let kept: usize = plan.consume.iter().map(|f| plan.kept_in(f).len()).sum();
        assert_eq!((plan.consume.len(), kept), (2, 1));
    }

    #[test]
    fn an_incomplete_copy_waits_until_abandoned_and_holds_back_its_batch_mates() {
        // Batch b1 staged 4 of a's 10 rows, in a fragment beside all of b; a second fragment of
        // b1 holds more of b's copy, so it must wait with it.
        let staged = vec![
            fragment("b1", "", 60, &[("a", 4, 10), ("b", 1, 3)]),
            fragment("b1", "", 60, &[("b", 2, 3)]),
            fragment("b1", "", 60, &[("c", 5, 5)]),
        ];
        let plan = plan_compaction(staged.clone(), |_| false, &eager(), now());
        assert_eq!(consumed(&plan), vec!["b1-c.parquet"]);
        assert_eq!(plan.deferred, 2);
        let abandoning = Policy { abandon_after: Duration::from_secs(60), ..eager() };
        let plan = plan_compaction(staged, |_| false, &abandoning, now());
        assert_eq!((plan.consume.len(), plan.deferred), (3, 0), "an abandoned copy is consumed");
        let kept: HashSet<SourceId> = plan.consume.iter().flat_map(|f| plan.kept_in(f)).collect();
        assert_eq!(kept, HashSet::from([id("b"), id("c")]), "but its rows are not committed");
    }

    #[test]
    fn an_incomplete_copy_of_a_sealed_batch_is_never_abandoned_and_is_named() {
        // Batch b1 was sealed (its messages answered), then lost the fragment holding 6 of a's
        // rows: the 4 left must wait for the source to be staged again, however long.
        let mut lost = fragment("b1", "date=2026-05-16", 100_000, &[("a", 4, 10), ("b", 2, 2)]);
        lost.awaits_seal = true;
        let other = fragment("b2", "date=2026-05-16", 100_000, &[("c", 3, 3)]);
        let abandoning = Policy { abandon_after: Duration::from_secs(60), ..eager() };
        let plan = plan_compaction(vec![lost.clone(), other], |_| false, &abandoning, now());
        assert_eq!(consumed(&plan), vec!["b2-c.parquet"]);
        assert_eq!(plan.stranded, vec![id("a")]);
        // Staged again (a backfill): the complete copy is committed, the stranded one dropped
        // as the duplicate it now is.
        let again = fragment("b3", "date=2026-05-16", 5, &[("a", 10, 10)]);
        let plan = plan_compaction(vec![lost, again], |_| false, &abandoning, now());
        assert_eq!(plan.consume.len(), 2);
        assert!(plan.stranded.is_empty() && plan.loads(&id("a")) && plan.loads(&id("b")));
    }

    #[test]
    fn a_complete_copy_in_another_batch_wins_over_an_incomplete_one() {
        let staged = vec![
            fragment("b1", "", 5, &[("a", 4, 10)]),
            fragment("b2", "", 5, &[("a", 4, 10)]),
            fragment("b2", "", 5, &[("a", 6, 10)]),
        ];
        let plan = plan_compaction(staged, |_| false, &eager(), now());
        assert_eq!(plan.consume.len(), 3);
        let kept_rows: u64 = plan
            .consume
            .iter()
            .filter(|f| !plan.kept_in(f).is_empty())
            .flat_map(|f| f.sources.iter().map(|s| s.rows))
            .sum();
        assert_eq!(kept_rows, 10);
    }

    #[test]
    fn small_fresh_partitions_wait_unless_forced_or_stale() {
        let staged = vec![fragment("b1", "date=2026-05-16", 30, &[("a", 1, 1)]), {
            let mut big = fragment("b1", "date=2026-05-17", 1, &[("b", 1, 1)]);
            big.size = 5000;
            big
        }];
        let waiting = Policy { min_bytes: 4000, freshness: Duration::from_secs(60), ..eager() };
        let plan = plan_compaction(staged.clone(), |_| false, &waiting, now());
        assert_eq!(consumed(&plan), vec!["b1-b.parquet"], "only the partition big enough");
        let forced = Policy { force: true, ..waiting.clone() };
        assert_eq!(plan_compaction(staged.clone(), |_| false, &forced, now()).consume.len(), 2);
        let stale = Policy { freshness: Duration::from_secs(30), ..waiting };
        assert_eq!(plan_compaction(staged, |_| false, &stale, now()).consume.len(), 2);
    }

    #[test]
    fn a_held_fragment_waits_and_keeps_its_copy_of_a_source_whole() {
        // Object a spans two fragments of batch b1; the first carries a column this compactor
        // cannot add, so neither may be committed without the other.
        let staged = vec![
            fragment("b1", "date=2026-05-16", 10, &[("a", 3, 5)]),
            fragment("b1", "date=2026-05-17", 10, &[("a", 2, 5)]),
            fragment("b2", "date=2026-05-16", 10, &[("d", 4, 4)]),
        ];
        let holding = Policy { held: HashSet::from([staged[0].path.clone()]), ..eager() };
        let plan = plan_compaction(staged, |_| false, &holding, now());
        assert_eq!(consumed(&plan), vec!["b2-d.parquet"]);
        assert_eq!(plan.deferred, 2);
    }

    #[test]
    fn a_partition_limited_run_takes_a_copy_only_with_all_its_partitions() {
        // One object whose rows fell on two dates, staged by one batch in two fragments, plus
        // an object wholly on the first date.
        let staged = vec![
            fragment("b1", "date=2026-05-16", 5000, &[("a", 3, 5), ("c", 2, 2)]),
            fragment("b1", "date=2026-05-17", 5000, &[("a", 2, 5)]),
            fragment("b2", "date=2026-05-16", 5000, &[("d", 4, 4)]),
        ];
        let limited = |abandon_after| Policy {
            partitions: Some(HashSet::from(["date=2026-05-16".to_string()])),
            abandon_after,
            ..eager()
        };
        for abandon_after in [Duration::from_secs(900), Duration::ZERO] {
            let plan = plan_compaction(staged.clone(), |_| false, &limited(abandon_after), now());
            assert_eq!(consumed(&plan), vec!["b2-d.parquet"], "a's copy is complete, but not all of it was asked for");
            assert_eq!(plan.deferred, 2);
        }
        let plan = plan_compaction(staged, |_| false, &eager(), now());
        assert_eq!(plan.consume.len(), 3, "a run over every partition takes the copy whole");
        let kept: HashSet<SourceId> = plan.consume.iter().flat_map(|f| plan.kept_in(f)).collect();
        assert_eq!(kept, HashSet::from([id("a"), id("c"), id("d")]));
    }

    #[test]
    fn a_batch_unsealed_for_abandon_after_is_abandoned_and_the_others_sorted_by_their_record() {
        let sealing = |batch: &str, seconds_old| {
            let mut fragment = fragment(batch, "", seconds_old, &[(batch, 1, 1)]);
            fragment.awaits_seal = true;
            fragment
        };
        let staged = vec![
            fragment("legacy", "", 5000, &[("a", 1, 1)]),
            sealing("sealed", 5000),
            sealing("void", 5),
            sealing("old", 120),
            sealing("old", 30),
            sealing("young", 120),
            sealing("young", 10),
        ];
        let records =
            HashMap::from([("sealed".to_string(), BatchState::Sealed), ("void".to_string(), BatchState::Void)]);
        let names = |fragments: &[FragmentInfo]| -> Vec<String> {
            fragments.iter().map(|f| f.batch.clone().unwrap_or_default()).collect()
        };
        let seals = sort_by_seal(staged, &records, Duration::from_secs(30), now());
        assert_eq!(names(&seals.ready), ["legacy", "sealed"], "a fragment needing no seal is ready at any age");
        assert_eq!(names(&seals.void), ["void"]);
        assert_eq!(names(&seals.waiting), ["young", "young"], "the newest fragment of a batch decides its age");
        assert_eq!(seals.abandoned.len(), 1);
        assert_eq!(seals.abandoned[0].0, "old");
        assert_eq!(names(&seals.abandoned[0].1), ["old", "old"]);
    }

    #[test]
    fn nothing_staged_plans_nothing() {
        let plan = plan_compaction(Vec::new(), |_| false, &eager(), now());
        assert_eq!((plan.consume.len(), plan.deferred, plan.oldest_staged_seconds), (0, 0, 0));
    }
}
