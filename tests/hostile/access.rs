//! Sessions a caller should not reach or should not have: thousands of
//! sessions from one owner (the open-session quota), another owner's
//! session ids, and ids that are guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use reqwest::{Method, Response, StatusCode};
use resumable::{Owner, SessionId};
use serde_json::json;

use crate::scene::*;

/// The default policy's limit of open sessions per owner.
const QUOTA: usize = 100;

/// Starts an upload for `token` in `dialect` (`rest`, `tus`, `ietf`,
/// `raw`); the reply.
async fn start_upload(scene: &Scene, dialect: &str, token: &str) -> Response {
    let server = &scene.server;
    let builder = match dialect {
        "rest" => server
            .request(Method::POST, "/attachment/initiate", Some(token))
            .json(&json!({ "fileName": "q.bin", "fileSize": 10 })),
        "tus" => server
            .request(Method::POST, "/files", Some(token))
            .header(TUS.0, TUS.1)
            .header("upload-length", "10"),
        "ietf" => server
            .request(Method::POST, "/uploads", Some(token))
            .header("upload-draft-interop-version", "8")
            .header("upload-complete", "?0"),
        _ => server
            .request(Method::POST, RAW, Some(token))
            .header(OCTET_STREAM.0, OCTET_STREAM.1)
            .header("content-disposition", "file; filename=\"q.bin\"")
            .body("0123456789"),
    };
    builder.send().await.expect("a start request")
}

/// The statuses of `count` uploads started for `token` at once (at most
/// `parallel` in flight), cycling through the dialects in `dialects`.
async fn start_many(
    scene: &Scene,
    token: &str,
    dialects: &[&str],
    count: usize,
    parallel: usize,
) -> BTreeMap<u16, usize> {
    let statuses: Vec<u16> = futures::stream::iter(0..count)
        .map(|i| {
            let dialect = dialects[i % dialects.len()];
            async move { start_upload(scene, dialect, token).await.status().as_u16() }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut tally = BTreeMap::new();
    for s in statuses {
        *tally.entry(s).or_default() += 1;
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_open_session_of_one_owner_is_403_and_others_are_unaffected() {
    let mut scene = Scene::start(
        "the_101st_open_session_of_one_owner_is_403_and_others_are_unaffected",
        1024,
    )
    .await;
    let all = ["rest", "tus", "ietf"];
    let tally = start_many(&scene, "hoarder", &all, QUOTA, 8).await;
    assert_eq!(tally, BTreeMap::from([(201, QUOTA)]));

    // The 101st, in every dialect that opens a session: 403.
    for dialect in ["rest", "tus", "ietf", "raw"] {
        scene.tried();
        let resp = start_upload(&scene, dialect, "hoarder").await;
        expect_problem(resp, StatusCode::FORBIDDEN, "quota-exceeded", dialect).await;
    }
    // A thousand more, sixteen at a time: all 403, nothing created.
    let uploads = scene.server.uploads().len();
    let hostile = 1000;
    let tally = start_many(
        &scene,
        "hoarder",
        &["rest", "tus", "ietf", "raw"],
        hostile,
        16,
    )
    .await;
    (0..hostile).for_each(|_| scene.tried());
    assert_eq!(tally, BTreeMap::from([(403, hostile)]));
    assert_eq!(scene.server.uploads().len(), uploads, "no upload was begun");

    // Another owner is not affected, in any dialect.
    for dialect in ["rest", "tus", "ietf", "raw"] {
        let resp = start_upload(&scene, dialect, "neighbour").await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{dialect}");
    }
    // Ending one session frees one place, and only one.
    let hoarder = Owner::new("hoarder");
    let sessions = scene.server.engine.store().clone();
    let open = sessions.count_active(&hoarder, scene.server.now()).await;
    assert_eq!(open.unwrap(), QUOTA as u64);
    let dir = scene.data_dir().join("store").join("sessions");
    let victim = first_session_of(&scene, &hoarder, &dir).await;
    scene
        .server
        .engine
        .abort(&hoarder, victim)
        .await
        .expect("the owner aborts one session");
    let tally = start_many(&scene, "hoarder", &["rest"], 2, 1).await;
    assert_eq!(tally, BTreeMap::from([(201, 1), (403, 1)]));
    scene.finish().await;
}

/// A burst of concurrent creations from one owner with no session yet:
/// never more than the quota are open afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_creations_never_exceeds_the_quota() {
    let mut scene = Scene::start(
        "a_burst_of_concurrent_creations_never_exceeds_the_quota",
        1024,
    )
    .await;
    let burst = 160;
    let tally = start_many(&scene, "burst", &["rest", "tus", "ietf"], burst, 64).await;
    (0..burst).for_each(|_| scene.tried());
    let created = tally.get(&201).copied().unwrap_or(0);
    let refused = tally.get(&403).copied().unwrap_or(0);
    assert_eq!(created + refused, burst, "{tally:?}");
    let open = scene
        .server
        .engine
        .store()
        .count_active(&Owner::new("burst"), scene.server.now())
        .await
        .unwrap();
    assert!(open <= QUOTA as u64, "{open} open sessions: {tally:?}");
    assert_eq!(
        open, created as u64,
        "every 201 is an open session: {tally:?}"
    );
    assert!(
        created >= QUOTA / 2,
        "the quota refused too much: {tally:?}"
    );
    scene.finish().await;
}

/// The first session of `owner` in the store's directory.
async fn first_session_of(scene: &Scene, owner: &Owner, sessions: &Path) -> SessionId {
    for entry in std::fs::read_dir(sessions).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        let Ok(id) = id.parse::<SessionId>() else {
            continue;
        };
        if let Ok(status) = scene.server.engine.status(owner, id).await
            && status.state == resumable::StateKind::Open
        {
            return id;
        }
    }
    panic!("no open session of {owner:?}");
}

/// One request on a session, as a hostile caller sends it.
#[derive(Debug, Clone, Copy)]
enum Probe {
    RestStatus,
    RestChunk,
    RestComplete,
    RestAbort,
    TusHead,
    TusPatch,
    TusDelete,
    TusConcat,
    IetfHead,
    IetfPatch,
    IetfDelete,
}

const PROBES: [Probe; 11] = [
    Probe::RestStatus,
    Probe::RestChunk,
    Probe::RestComplete,
    Probe::RestAbort,
    Probe::TusHead,
    Probe::TusPatch,
    Probe::TusDelete,
    Probe::TusConcat,
    Probe::IetfHead,
    Probe::IetfPatch,
    Probe::IetfDelete,
];

/// A reply reduced to what a caller can compare: status, headers but
/// `date`, body.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Scene {
    /// Sends `probe` on session `id` as `token`; counted as hostile.
    async fn probe(&mut self, probe: Probe, id: &str, token: Option<&str>) -> Seen {
        self.tried();
        let server = &self.server;
        let tus = |m: Method, path: String| server.request(m, &path, token).header(TUS.0, TUS.1);
        let ietf = |m: Method, path: String| {
            server
                .request(m, &path, token)
                .header("upload-draft-interop-version", "8")
        };
        let builder = match probe {
            Probe::RestStatus => {
                server.request(Method::GET, &format!("/attachment/session/{id}"), token)
            }
            Probe::RestChunk => server
                .request(
                    Method::PUT,
                    &format!("/attachment/session/{id}/upload/0"),
                    token,
                )
                .header(OCTET_STREAM.0, OCTET_STREAM.1)
                .body("0123456789"),
            Probe::RestComplete => server.request(
                Method::POST,
                &format!("/attachment/session/{id}/complete"),
                token,
            ),
            Probe::RestAbort => server.request(
                Method::POST,
                &format!("/attachment/session/{id}/abort"),
                token,
            ),
            Probe::TusHead => tus(Method::HEAD, format!("/files/{id}")),
            Probe::TusPatch => tus(Method::PATCH, format!("/files/{id}"))
                .header(OFFSET_STREAM.0, OFFSET_STREAM.1)
                .header("upload-offset", "0")
                .body("0123456789"),
            Probe::TusDelete => tus(Method::DELETE, format!("/files/{id}")),
            Probe::TusConcat => tus(Method::POST, "/files".to_owned())
                .header("upload-concat", format!("final;/files/{id}")),
            Probe::IetfHead => ietf(Method::HEAD, format!("/uploads/{id}")),
            Probe::IetfPatch => ietf(Method::PATCH, format!("/uploads/{id}"))
                .header(PARTIAL_UPLOAD.0, PARTIAL_UPLOAD.1)
                .header("upload-offset", "0")
                .header("upload-complete", "?0")
                .body("0123456789"),
            Probe::IetfDelete => ietf(Method::DELETE, format!("/uploads/{id}")),
        };
        let resp = builder.send().await.expect("a probe");
        let status = resp.status().as_u16();
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str() != "date")
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or("").replace(id, "{id}"),
                )
            })
            .collect();
        headers.sort();
        let body = resp.text().await.unwrap_or_default().replace(id, "{id}");
        Seen {
            status,
            headers,
            body,
        }
    }
}

/// Uploads of `token` in every dialect that has ids: a REST session with
/// its first chunk, a tus upload (partial, for a concatenation to name)
/// and an IETF upload, each with some bytes. Their ids.
async fn victim_uploads(scene: &Scene, token: &str) -> [String; 3] {
    let server = &scene.server;
    let resp = server
        .request(Method::POST, "/attachment/initiate", Some(token))
        .json(&json!({ "fileName": "private.bin", "fileSize": 2000 }))
        .send()
        .await
        .unwrap();
    let rest = session_id(&json_of(resp, StatusCode::CREATED).await);
    let resp = server
        .request(
            Method::PUT,
            &format!("/attachment/session/{rest}/upload/0"),
            Some(token),
        )
        .header(OCTET_STREAM.0, OCTET_STREAM.1)
        .body(vec![5u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = server
        .request(Method::POST, "/files", Some(token))
        .header(TUS.0, TUS.1)
        .header("upload-length", "20")
        .header("upload-concat", "partial")
        .header(OFFSET_STREAM.0, OFFSET_STREAM.1)
        .body("0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let tus = id_in(&location(&resp)).to_owned();
    let resp = server
        .request(Method::POST, "/uploads", Some(token))
        .header("upload-draft-interop-version", "8")
        .header("upload-complete", "?0")
        .body("0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let ietf = id_in(&location(&resp)).to_owned();
    [rest, tus, ietf]
}

/// The victim's uploads are as [`victim_uploads`] left them.
async fn assert_untouched(scene: &Scene, token: &str, ids: &[String; 3]) {
    let victim = Owner::new(token);
    let [rest, tus, ietf] = ids.clone().map(|id| id.parse::<SessionId>().unwrap());
    let engine = &scene.server.engine;
    let status = engine
        .status(&victim, rest)
        .await
        .expect("the REST session");
    assert_eq!(
        (status.state, status.received_chunks.clone()),
        (resumable::StateKind::Open, vec![0])
    );
    for id in [tus, ietf] {
        let status = engine
            .status(&victim, id)
            .await
            .expect("the appended upload");
        assert_eq!(
            (status.state, status.offset),
            (resumable::StateKind::Open, 10)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owners_session_is_404_exactly_like_an_unknown_one() {
    let mut scene = Scene::start(
        "another_owners_session_is_404_exactly_like_an_unknown_one",
        1024,
    )
    .await;
    let ids = victim_uploads(&scene, "alice").await;
    for intruder in [Some("mallory"), None] {
        for (probe, id) in PROBES
            .iter()
            .zip([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2].map(|i| &ids[i]))
        {
            let unknown = SessionId::random().to_string();
            let foreign = scene.probe(*probe, id, intruder).await;
            let nobody = scene.probe(*probe, &unknown, intruder).await;
            assert_eq!(foreign.status, 404, "{probe:?}: {foreign:?}");
            assert_eq!(
                foreign, nobody,
                "{probe:?} as {intruder:?}: the replies differ"
            );
        }
    }
    assert_untouched(&scene, "alice", &ids).await;
    scene.finish().await;
}

/// The files of the data directory that the bystander does not touch,
/// with their lengths and modification times. The store's lock files and
/// temporary files (which the bystander's writes make and remove) are left
/// out.
fn snapshot(scene: &Scene) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let root = scene.data_dir();
    let skip = scene.bystander_ids();
    walk(&root)
        .into_iter()
        .filter(|p| {
            let text = p.to_string_lossy();
            let temporary = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            !temporary
                && !skip.iter().any(|id| text.contains(id.as_str()))
                && !text.starts_with("store/locks")
        })
        .filter_map(|p| {
            // A directory's own time changes with the bystander's files in
            // it: only files are compared by time.
            let meta = std::fs::metadata(root.join(&p)).ok()?;
            let seen = match meta.is_dir() {
                true => (0, std::time::SystemTime::UNIX_EPOCH),
                false => (meta.len(), meta.modified().ok()?),
            };
            Some((p, seen))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_session_ids_are_404_and_cost_nothing() {
    let mut scene = Scene::start("guessed_session_ids_are_404_and_cost_nothing", 1024).await;
    let ids = victim_uploads(&scene, "alice").await;
    let real = &ids[0];
    let mut guesses: Vec<String> = (0..40).map(|_| SessionId::random().to_string()).collect();
    guesses.extend((0..40).map(|_| SessionId::random().to_string().to_uppercase()));
    guesses.extend((0u32..20).map(|i| format!("{i:032x}")));
    guesses.extend((0u32..5).map(|i| format!("{:032x}", u128::MAX - u128::from(i))));
    let neighbours = |id: &str| {
        let (head, last) = id.split_at(31);
        let last = u8::from_str_radix(last, 16).unwrap();
        [last.wrapping_add(1) & 15, last.wrapping_sub(1) & 15].map(|d| format!("{head}{d:x}"))
    };
    for id in &ids {
        let uuid = id.parse::<SessionId>().unwrap();
        let hyphenated = uuid.as_uuid().hyphenated().to_string();
        guesses.extend(neighbours(id));
        guesses.extend([
            // The real ids, spelled otherwise: another owner still finds
            // nothing.
            id.to_uppercase(),
            hyphenated.clone(),
            hyphenated.to_uppercase(),
            format!("{{{hyphenated}}}"),
            format!("urn:uuid:{hyphenated}"),
            format!("{id}0"),
            id[..31].to_owned(),
            format!("0x{id}"),
            format!("{id}%00"),
            format!("%20{id}"),
        ]);
    }
    assert!(guesses.iter().all(|g| g != real));
    let before = snapshot(&scene);
    let victim = Owner::new("alice");
    let engine = scene.server.engine.clone();
    let expiry = |id: &str| {
        let id: SessionId = id.parse().unwrap();
        let engine = engine.clone();
        let victim = victim.clone();
        async move { engine.status(&victim, id).await.unwrap().expires_at }
    };
    let expiries = [
        expiry(&ids[0]).await,
        expiry(&ids[1]).await,
        expiry(&ids[2]).await,
    ];
    for guess in &guesses {
        for probe in PROBES {
            let seen = scene.probe(probe, guess, Some("mallory")).await;
            assert_eq!(seen.status, 404, "{probe:?} {guess}: {seen:?}");
        }
    }
    assert_eq!(
        snapshot(&scene),
        before,
        "a guess changed the data directory"
    );
    assert_eq!(
        [
            expiry(&ids[0]).await,
            expiry(&ids[1]).await,
            expiry(&ids[2]).await
        ],
        expiries,
        "a guess extended a session"
    );
    assert_untouched(&scene, "alice", &ids).await;
    scene.finish().await;
}
