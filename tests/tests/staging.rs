//! The staging area on real S3 (LocalStack): a fragment the store receives in several pieces
//! arrives as one object, byte for byte.

use inlet::ingest::JsonDecoder;
use inlet::lineage::FragmentSource;
use inlet::lineage::SourceObject;
use inlet::stage::FragmentStore;
use inlet::testing::{sample, schemas};
use inlet_tests::LocalStack;

#[tokio::test(flavor = "multi_thread")]
async fn a_fragment_put_in_several_pieces_reads_back_whole_from_s3() {
    let localstack = LocalStack::connect().await.unwrap();
    let bucket = format!("staging-{}", uuid::Uuid::new_v4().simple());
    localstack.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let url = url::Url::parse(&format!("s3://{bucket}/table/")).unwrap();
    let store = FragmentStore::new(inlet::stage::table_store(&url, &localstack.storage_options()).unwrap());

    let schema = schemas::events();
    let object = SourceObject {
        bucket: "raw".into(),
        key: "svc/date=2026-05-16/big.json.zst".into(),
        etag: None,
        ..Default::default()
    };
    let decoded =
        JsonDecoder::new(schema.clone(), 1024).decode(&object, &sample::ndjson_object(7, 0, 24 << 20)).unwrap();
    assert!(decoded.quarantined.is_empty());
    let rows: u64 = decoded.batches.iter().map(|batch| batch.num_rows() as u64).sum();
    let sources = vec![FragmentSource::new(&object, rows, Some(rows))];
    let data = inlet::stage::fragment::encode(&schema.table, &decoded.batches, &sources).unwrap();
    assert!(data.len() > 2 << 20, "the fragment must span several 1 MiB pieces: {} bytes", data.len());

    let path = store.put(data.clone(), "").await.unwrap();
    let listed = store.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|meta| (meta.location.clone(), meta.size)).collect::<Vec<_>>(),
        vec![(path.clone(), data.len() as u64)]
    );
    let stored = localstack.s3.get_object().bucket(&bucket).key(format!("table/{path}")).send().await.unwrap();
    assert_eq!(stored.body.collect().await.unwrap().into_bytes(), data);
    let fragment = store.read(&path).await.unwrap();
    assert_eq!(fragment.sources, sources);
    assert_eq!(fragment.batches.iter().map(|batch| batch.num_rows() as u64).sum::<u64>(), rows);
}
