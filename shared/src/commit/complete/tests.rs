use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::commit::open_or_create;
use crate::schema::Layout;
use crate::stage::table_store;

/// Queues that answer what the test sets.
struct FakeQueues(Mutex<Option<QueueState>>);

#[async_trait]
impl QueueProbe for FakeQueues {
    async fn probe(&self) -> Result<Option<QueueState>> {
        Ok(*self.0.lock().unwrap())
    }
}

fn queues(backlog: u64, in_flight_minutes: u64) -> FakeQueues {
    FakeQueues(Mutex::new(Some(QueueState { backlog, in_flight_bound: Duration::from_secs(in_flight_minutes * 60) })))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

struct Table {
    _dir: tempfile::TempDir,
    store: Arc<dyn ObjectStore>,
    table: DeltaTable,
    windows: Windows,
}

async fn table(partition_by: &str) -> Table {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let layout = Layout { partition: Some(partition_by.parse().unwrap()), ..Layout::default() };
    let schema = crate::testing::schemas::ID_AT.parse_with(layout);
    let store = table_store(&url, &HashMap::new()).unwrap();
    let table = open_or_create(&url, &HashMap::new(), &schema, &Default::default()).await.unwrap();
    let windows = Windows::of(schema.layout.partition.as_ref().unwrap()).unwrap();
    Table { _dir: dir, store, table, windows }
}

impl Table {
    fn check(&self) -> Completeness {
        let options = CompletenessOptions { settle: Duration::from_secs(600), max_markers: 100 };
        Completeness::new(self.store.clone(), self.windows.clone(), options)
    }

    async fn stage(&self, directory: &str) {
        let path = Path::from(format!("_inlet/fragments/{directory}/x.parquet"));
        self.store.put(&path, PutPayload::from_static(b"staged")).await.unwrap();
    }

    async fn run(
        &mut self,
        check: &Completeness,
        queues: &FakeQueues,
        done: Committed,
        now: &str,
    ) -> CompletenessReport {
        check.check(&mut self.table, queues, &done, at(now)).await.unwrap()
    }

    async fn marker(&self, window: &str) -> Option<WindowMarker> {
        read_marker(self.store.as_ref(), window).await.unwrap()
    }
}

fn committed(version: u64, partitions: &[&str]) -> Committed {
    Committed { version: Some(version), partitions: partitions.iter().map(|p| p.to_string()).collect() }
}

#[test]
fn windows_come_from_the_date_and_hour_columns() {
    let spec: PartitionSpec = "service=key,date=date(at),hour=hour(at)".parse().unwrap();
    let windows = Windows::of(&spec).unwrap();
    assert_eq!(windows.start_of("service=web/date=2026-05-16/hour=7"), Some(at("2026-05-16T07:00:00Z")));
    assert_eq!(windows.start_of("service=web/date=__HIVE_DEFAULT_PARTITION__/hour=7"), None);
    assert_eq!(windows.name(at("2026-05-16T07:00:00Z")), "date=2026-05-16/hour=7");
    assert_eq!(windows.floor(at("2026-05-16T07:59:59Z")), at("2026-05-16T07:00:00Z"));

    let keyed = Windows::of(&"service=key,date=key".parse().unwrap()).unwrap();
    assert_eq!(keyed.start_of("service=web/date=2026-05-16"), Some(at("2026-05-16T00:00:00Z")), "named as a date");
    let dated = Windows::of(&"date=key,service=key".parse().unwrap()).unwrap();
    assert_eq!(dated.start_of("date=2026-05-16/service=web"), Some(at("2026-05-16T00:00:00Z")));
    assert_eq!(dated.start_of("date=yesterday/service=web"), None);
    assert!(Windows::of(&"area=value(region)".parse().unwrap()).is_none(), "no time column: no windows");
}

#[test]
fn the_in_flight_bound_reads_the_redrive_policy_either_way_it_is_written() {
    assert_eq!(max_receive_count(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":5}"#), 5);
    assert_eq!(max_receive_count(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":"3"}"#), 3);
    assert_eq!(max_receive_count("not json"), 1);
}

#[tokio::test]
async fn a_day_completes_after_a_quiet_probe_matures_unless_staged_and_late_rows_are_recorded() {
    let mut lake = table("date=date(at)").await;
    let check = lake.check();
    let (quiet, busy) = (queues(0, 30), queues(3, 30));

    // The first check starts the watermark at the earliest day its run committed.
    let first = committed(1, &["date=2026-05-16", "date=2026-05-17"]);
    let report = lake.run(&check, &quiet, first, "2026-05-17T12:00:00Z").await;
    assert_eq!((report.complete_through, report.completed.len()), (Some(at("2026-05-16T00:00:00Z")), 0));
    // Its quiet probe (12:00) has not matured: a notification received then may still be in flight.
    let report = lake.run(&check, &quiet, Committed::default(), "2026-05-17T12:20:00Z").await;
    assert!(report.completed.is_empty() && report.waiting_for.unwrap().contains("in flight"));
    let report = lake.run(&check, &quiet, Committed::default(), "2026-05-17T12:31:00Z").await;
    assert_eq!(report.completed, vec!["date=2026-05-16"]);
    assert_eq!(report.complete_through, Some(at("2026-05-17T00:00:00Z")));
    let marker = lake.marker("date=2026-05-16").await.unwrap();
    assert_eq!((marker.start, marker.end, marker.version), (at("2026-05-16T00:00:00Z"), at("2026-05-17T00:00:00Z"), 0));

    // The 17th: a backlog when it is due gives no quiet probe; a later one does, and it
    // matures half an hour on.
    let report = lake.run(&check, &busy, Committed::default(), "2026-05-18T00:20:00Z").await;
    assert!(report.completed.is_empty() && report.waiting_for.unwrap().contains("3 notifications"));
    assert!(lake.run(&check, &quiet, Committed::default(), "2026-05-18T01:00:00Z").await.completed.is_empty());
    // A staged fragment of the 17th holds it; one of the 18th, or a late one of the 16th, does not.
    lake.stage("date=2026-05-17").await;
    lake.stage("date=2026-05-18").await;
    lake.stage("date=2026-05-16").await;
    let report = lake.run(&check, &busy, Committed::default(), "2026-05-18T01:31:00Z").await;
    assert!(report.completed.is_empty(), "{report:?}");
    assert_eq!(report.waiting_for.as_deref(), Some("staged fragments of date=2026-05-17"));
    lake.store.delete(&Path::from("_inlet/fragments/date=2026-05-17/x.parquet")).await.unwrap();
    // The backlog now is of later notifications: the quiet probe of 01:00 has matured.
    let report = lake.run(&check, &busy, Committed::default(), "2026-05-18T01:32:00Z").await;
    assert_eq!(report.completed, vec!["date=2026-05-17"]);
    assert_eq!(check.state().await.unwrap().unwrap().complete_through, at("2026-05-18T00:00:00Z"));

    // A commit into the completed 16th is late: its marker says so, the watermark stays.
    let late = committed(7, &["date=2026-05-16", "date=2026-05-18"]);
    let report = lake.run(&check, &quiet, late, "2026-05-18T03:00:00Z").await;
    assert_eq!(report.late, vec!["date=2026-05-16"]);
    assert_eq!(lake.marker("date=2026-05-16").await.unwrap().late_versions, vec![7]);
    assert_eq!(report.complete_through, Some(at("2026-05-18T00:00:00Z")));
    // Racing runs each record their own version (none is lost), and the marker is never rewritten.
    let state = check.state().await.unwrap().unwrap();
    let sixteenth: BTreeSet<String> = ["date=2026-05-16".to_string()].into();
    let now = at("2026-05-18T03:01:00Z");
    let (eight, nine) =
        futures::join!(check.record_late(&state, 8, &sixteenth, now), check.record_late(&state, 9, &sixteenth, now));
    assert_eq!(
        (eight.unwrap(), nine.unwrap()),
        (vec!["date=2026-05-16".to_string()], vec!["date=2026-05-16".to_string()])
    );
    assert_eq!(lake.marker("date=2026-05-16").await.unwrap().late_versions, vec![7, 8, 9]);
    let written: WindowMarker =
        read_json(lake.store.as_ref(), &complete_marker("date=2026-05-16")).await.unwrap().unwrap();
    assert!(written.late_versions.is_empty(), "{written:?}");
    // Something else in the folder does not fail the read.
    lake.store.put(&late_commits("date=2026-05-16").join("notes.txt"), "x".into()).await.unwrap();
    assert_eq!(lake.marker("date=2026-05-16").await.unwrap().late_versions, vec![7, 8, 9]);
    // A window the watermark covers but no marker names (before the first check) is recorded too.
    let tenth: BTreeSet<String> = ["date=2026-05-10".to_string()].into();
    assert_eq!(check.record_late(&state, 10, &tenth, now).await.unwrap(), vec!["date=2026-05-10".to_string()]);
    let record: LateCommit =
        read_json(lake.store.as_ref(), &late_commit("date=2026-05-10", 10)).await.unwrap().unwrap();
    assert_eq!((record.window.as_str(), record.version, record.recorded_at), ("date=2026-05-10", 10, now));

    // A run that saw less does not move the watermark back, nor rewrite a marker.
    let behind =
        CompleteState { complete_through: at("2026-05-17T00:00:00Z"), ..check.state().await.unwrap().unwrap() };
    check.save(behind).await.unwrap();
    assert_eq!(check.state().await.unwrap().unwrap().complete_through, at("2026-05-18T00:00:00Z"));
    check.create_json(complete_marker("date=2026-05-16"), &marker).await.unwrap();
    assert_eq!(lake.marker("date=2026-05-16").await.unwrap().late_versions, vec![7, 8, 9]);
}

#[tokio::test]
async fn hours_complete_in_turn_and_a_long_pause_catches_up_in_capped_steps() {
    let mut lake = table("date=date(at),hour=hour(at)").await;
    let options = CompletenessOptions { settle: Duration::from_secs(60), max_markers: 5 };
    let check = Completeness::new(lake.store.clone(), lake.windows.clone(), options);
    let first = committed(1, &["date=2026-05-16/hour=22"]);
    let report = check.check(&mut lake.table, &NoQueues, &first, at("2026-05-16T23:30:00Z")).await.unwrap();
    assert_eq!(report.complete_through, Some(at("2026-05-16T22:00:00Z")));
    let report =
        check.check(&mut lake.table, &NoQueues, &Committed::default(), at("2026-05-16T23:30:00Z")).await.unwrap();
    assert_eq!(report.completed, vec!["date=2026-05-16/hour=22"]);
    assert!(!check.state().await.unwrap().unwrap().queues_checked);

    // A day later: 24 hours due, five at a time.
    let later = at("2026-05-17T23:30:00Z");
    let report = check.check(&mut lake.table, &NoQueues, &Committed::default(), later).await.unwrap();
    assert_eq!(report.completed.len(), 5);
    assert_eq!(report.completed[0], "date=2026-05-16/hour=23");
    assert_eq!(report.completed[1], "date=2026-05-17/hour=0");
    let mut runs = 1;
    while check.state().await.unwrap().unwrap().complete_through < at("2026-05-17T23:00:00Z") {
        check.check(&mut lake.table, &NoQueues, &Committed::default(), later).await.unwrap();
        runs += 1;
    }
    assert_eq!(runs, 5, "24 hours in runs of five");
    assert!(lake.marker("date=2026-05-17/hour=22").await.is_some());
    assert!(lake.marker("date=2026-05-17/hour=23").await.is_none(), "not settled yet");
}

#[tokio::test]
async fn a_first_check_starts_at_most_so_many_windows_back_and_a_key_column_counts_when_named_as_a_date() {
    let mut lake = table("date=date(at),hour=hour(at)").await;
    let check = lake.check();
    let ancient = committed(1, &["date=1970-01-01/hour=0"]);
    let report = check.check(&mut lake.table, &NoQueues, &ancient, at("2026-05-16T12:30:00Z")).await.unwrap();
    let settled = at("2026-05-16T12:00:00Z");
    assert_eq!(report.complete_through, Some(settled - TimeDelta::hours(750)));

    let keyed = |spec: &str| Windows::of(&spec.parse().unwrap());
    assert!(keyed("tenant=key").is_none(), "not named as a date");
    assert!(keyed("DT=key").is_some());
    let dated = keyed("date=key").unwrap();
    assert_eq!(dated.start_of("date=2026-5-16"), None, "not written as YYYY-MM-DD");
}
