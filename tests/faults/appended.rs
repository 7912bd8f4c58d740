//! Faults under the appending flow (tus, the IETF draft, the raw upload):
//! the offset a client resumes from only ever covers bytes that are stored.

use resumable::conformance::faults::{StoreFault, StoreOp};
use resumable::{AppendOptions, AppendReceipt, Error, ErrorKind, NewAppendUpload, SessionId};

use crate::rig::*;

on_both_backends!(
    lost_reply_recording_an_append_keeps_its_bytes,
    disk_full_mid_append_keeps_nothing_of_it,
);

impl Rig {
    /// Creates an appended upload of `SIZE` bytes.
    async fn create_appended(&self) -> SessionId {
        let upload = NewAppendUpload {
            size: Some(SIZE as u64),
            ..NewAppendUpload::default()
        };
        self.engine
            .create(&self.me, upload)
            .await
            .expect("create")
            .id
    }

    /// Appends `source[from..to]` at `from`, keeping a cut-off body's bytes
    /// as tus does.
    async fn append(
        &self,
        id: SessionId,
        source: &[u8],
        from: usize,
        to: usize,
    ) -> Result<AppendReceipt, Error> {
        let options = AppendOptions {
            keep_cut_off: true,
            ..AppendOptions::default()
        };
        let bytes = &source[from..to];
        self.engine
            .append(&self.me, id, from as u64, body(bytes), options)
            .await
    }

    async fn offset(&self, id: SessionId) -> u64 {
        self.status(id).await.offset
    }
}

/// The store records an append but the reply is lost: 503; the offset a
/// resuming client reads includes the append, whose bytes must be kept: the
/// upload completes from there with exactly the source's bytes.
async fn lost_reply_recording_an_append_keeps_its_bytes(backend: Backend) {
    let rig = Rig::new(backend);
    let source = data(SIZE, 70);
    let id = rig.create_appended().await;
    rig.append(id, &source, 0, 3000).await.expect("append");
    rig.store
        .lose_reply_next(StoreOp::Update, StoreFault::Unavailable, 1);
    assert_fails(
        rig.append(id, &source, 3000, 6000).await,
        ErrorKind::Unavailable,
        503,
        "store-failure",
        true,
    );
    let offset = rig.offset(id).await;
    assert_eq!(offset, 6000, "the append was recorded");
    let last = rig
        .append(id, &source, offset as usize, SIZE)
        .await
        .expect("the last append");
    let attachment = last.completed.expect("the upload completes");
    assert_eq!(attachment.blob.sha256, sha256(&source));
    rig.assert_blob(id, &source).await;
}

/// The disk fills up 1,234 bytes into an append that keeps cut-off bodies:
/// 503 `storage-full`; the offset does not move (the bytes that reached the
/// disk are not kept), and the client resumes from it.
async fn disk_full_mid_append_keeps_nothing_of_it(backend: Backend) {
    let rig = Rig::new(backend);
    let source = data(SIZE, 71);
    let id = rig.create_appended().await;
    rig.append(id, &source, 0, 2000).await.expect("append");
    rig.sink.disk_full_after_bytes(1234);
    assert_fails(
        rig.append(id, &source, 2000, SIZE).await,
        ErrorKind::Unavailable,
        503,
        "storage-full",
        true,
    );
    assert_eq!(rig.offset(id).await, 2000);
    if let Some(parts) = rig.part_files(id) {
        assert_eq!(parts, 1, "no half-written part is kept");
    }
    let last = rig
        .append(id, &source, 2000, SIZE)
        .await
        .expect("the append");
    assert!(last.completed.is_some());
    rig.assert_blob(id, &source).await;
}
