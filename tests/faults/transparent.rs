//! With an empty script the wrappers are transparent: they pass the
//! conformance suites of the backends they wrap, and count every call.

use std::sync::Arc;

use resumable::conformance::faults::{FaultySink, FaultyStore, SinkOp, StoreOp};
use resumable::conformance::{sink, store};
use resumable::sink::{FsSink, MemorySink};
use resumable::store::{FsStore, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faultless_wrappers_of_the_memory_backends_conform() {
    let faulty_store = Arc::new(FaultyStore::new(MemoryStore::new()));
    store::run_all(faulty_store.clone()).await;
    assert!(faulty_store.calls(StoreOp::Update) > 0);
    assert_eq!(faulty_store.injected(StoreOp::Update), 0);
    let faulty_sink = Arc::new(FaultySink::new(MemorySink::new()));
    sink::run_all(faulty_sink.clone()).await;
    assert!(faulty_sink.calls(SinkOp::PutPart) > 0);
    assert_eq!(faulty_sink.injected(SinkOp::PutPart), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faultless_wrappers_of_the_fs_backends_conform() {
    let dir = tempfile::tempdir().unwrap();
    store::run_all(Arc::new(FaultyStore::new(
        FsStore::open(dir.path()).unwrap(),
    )))
    .await;
    sink::run_all(Arc::new(FaultySink::new(FsSink::open(dir.path()).unwrap()))).await;
}
