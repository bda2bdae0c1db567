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

    async fn marker(&self, window: &str) -> Option<WindowMarker> {
        read_json(self.store.as_ref(), &complete_marker(window)).await.unwrap()
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
    assert_eq!(keyed.start_of("service=web/date=2026-05-16"), None, "the first key column is not a date");
    let dated = Windows::of(&"date=key,service=key".parse().unwrap()).unwrap();
    assert_eq!(dated.start_of("date=2026-05-16/service=web"), Some(at("2026-05-16T00:00:00Z")));
    assert_eq!(dated.start_of("date=yesterday/service=web"), None);
    assert!(Windows::of(&"area=value(region)".parse().unwrap()).is_none(), "no time column: no windows");
}

#[tokio::test]
async fn a_day_completes_once_settled_unless_staged_or_queued_and_late_rows_are_recorded() {
    let mut lake = table("date=date(at)").await;
    let check = lake.check();
    let quiet = queues(0, 30);

    // The first run commits two days; the 16th is closed and settled, the 17th is not over.
    let first = committed(1, &["date=2026-05-16", "date=2026-05-17"]);
    let report = check.check(&mut lake.table, &quiet, &first, at("2026-05-17T12:00:00Z")).await.unwrap();
    assert_eq!(report.completed, vec!["date=2026-05-16"]);
    assert_eq!(report.complete_through, Some(at("2026-05-17T00:00:00Z")));
    let marker = lake.marker("date=2026-05-16").await.unwrap();
    assert_eq!((marker.start, marker.end, marker.version), (at("2026-05-16T00:00:00Z"), at("2026-05-17T00:00:00Z"), 0));

    // Past midnight but within the in-flight bound (30 min) and the settle time: not yet.
    let report = check.check(&mut lake.table, &quiet, &Committed::default(), at("2026-05-18T00:20:00Z")).await.unwrap();
    assert!(report.completed.is_empty(), "{report:?}");

    // A backlog on the queue holds it.
    let report =
        check.check(&mut lake.table, &queues(3, 30), &Committed::default(), at("2026-05-18T02:00:00Z")).await.unwrap();
    assert!(report.completed.is_empty() && report.waiting_for.unwrap().contains("3 notifications"));

    // So does a staged fragment of the 17th; one of the 18th does not.
    lake.stage("date=2026-05-17").await;
    lake.stage("date=2026-05-18").await;
    let report = check.check(&mut lake.table, &quiet, &Committed::default(), at("2026-05-18T02:00:00Z")).await.unwrap();
    assert!(report.completed.is_empty(), "{report:?}");
    assert_eq!(report.waiting_for.as_deref(), Some("staged fragments of date=2026-05-17"));
    lake.store.delete(&Path::from("_inlet/fragments/date=2026-05-17/x.parquet")).await.unwrap();
    let report = check.check(&mut lake.table, &quiet, &Committed::default(), at("2026-05-18T02:00:00Z")).await.unwrap();
    assert_eq!(report.completed, vec!["date=2026-05-17"]);
    assert_eq!(check.state().await.unwrap().unwrap().complete_through, at("2026-05-18T00:00:00Z"));

    // A commit into the completed 16th is late: its marker says so, the watermark stays.
    let late = committed(7, &["date=2026-05-16", "date=2026-05-18"]);
    let report = check.check(&mut lake.table, &quiet, &late, at("2026-05-18T03:00:00Z")).await.unwrap();
    assert_eq!(report.late, vec!["date=2026-05-16"]);
    assert_eq!(lake.marker("date=2026-05-16").await.unwrap().late_versions, vec![7]);
    assert_eq!(report.complete_through, Some(at("2026-05-18T00:00:00Z")));
}

#[tokio::test]
async fn hours_complete_in_turn_and_a_long_pause_catches_up_in_capped_steps() {
    let mut lake = table("date=date(at),hour=hour(at)").await;
    let options = CompletenessOptions { settle: Duration::from_secs(60), max_markers: 5 };
    let check = Completeness::new(lake.store.clone(), lake.windows.clone(), options);
    let first = committed(1, &["date=2026-05-16/hour=22"]);
    let report = check.check(&mut lake.table, &NoQueues, &first, at("2026-05-16T23:30:00Z")).await.unwrap();
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
