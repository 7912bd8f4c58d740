//! Chunk size planning, the chunk layout of a new session, the exact length
//! of every chunk, and retried chunks.

use super::*;

// ---- plan_chunk_size ----

#[test]
fn plan_keeps_the_preferred_size_within_bounds() {
    assert_ok!(plan_chunk_size(1000, 64, &caps(1, 1 << 20, 10_000)), 64);
    assert_ok!(plan_chunk_size(1000, 64, &SinkCapabilities::UNLIMITED), 64);
}

#[test]
fn plan_clamps_the_preferred_size_to_the_sink_bounds() {
    assert_ok!(plan_chunk_size(1000, 2, &caps(16, 128, 10_000)), 16);
    assert_ok!(plan_chunk_size(1000, 4096, &caps(16, 128, 10_000)), 128);
    // A preferred size of 0 is raised to the smallest part (at least 1 byte).
    assert_ok!(plan_chunk_size(10, 0, &caps(0, 128, 10_000)), 1);
}

#[test]
fn plan_raises_the_size_so_the_file_fits_the_part_count() {
    // 1,000 bytes in at most 10 parts need 100-byte parts.
    let size = plan_chunk_size(1000, 8, &caps(1, 1 << 20, 10)).unwrap();
    assert_eq!(size, 100);
    assert!(1000u64.div_ceil(size) <= 10);
    // 1,001 bytes in at most 10 parts need 101-byte parts.
    let size = plan_chunk_size(1001, 8, &caps(1, 1 << 20, 10)).unwrap();
    assert_eq!(size, 101);
    assert_eq!(1001u64.div_ceil(size), 10);
}

#[test]
fn plan_refuses_a_file_no_chunk_size_fits() {
    // 10 parts of at most 100 bytes hold 1,000 bytes.
    assert_ok!(plan_chunk_size(1000, 8, &caps(1, 100, 10)), 100);
    assert_err!(
        plan_chunk_size(1001, 8, &caps(1, 100, 10)),
        Error::FileTooLarge {
            size: 1001,
            max: 1000
        }
    );
    // The blob limit applies too.
    let limited = SinkCapabilities {
        max_blob_size: 500,
        ..caps(1, 100, 10)
    };
    assert_err!(
        plan_chunk_size(501, 8, &limited),
        Error::FileTooLarge {
            size: 501,
            max: 500
        }
    );
    assert_ok!(plan_chunk_size(500, 8, &limited), 50);
}

#[test]
fn plan_for_an_empty_file_keeps_the_preferred_size() {
    assert_ok!(plan_chunk_size(0, 64, &caps(1, 1 << 20, 10)), 64);
    assert_ok!(plan_chunk_size(0, 64, &caps(1, 100, 1)), 64);
}

// ---- open and the chunk layout ----

#[test]
fn a_new_session_is_open_with_an_empty_ledger_and_a_timeout() {
    let s = session(10, 4);
    assert_eq!(s.created_at, t0());
    assert_eq!(s.expires_at, t0() + secs(100));
    assert_eq!(s.state.kind(), StateKind::Open);
    assert_eq!(s.state.ledger().unwrap().parts().len(), 0);
    assert_eq!(s.total_chunks(), 3);
    assert_eq!(s.chunk_range(0), Some(0..4));
    assert_eq!(s.chunk_range(2), Some(8..10));
    assert_eq!(s.chunk_range(3), None);
    // A chunk size of 0 is raised to 1 byte.
    assert_eq!(session(3, 0).chunk_size, 1);
}

#[test]
fn chunk_indices_past_the_last_are_out_of_range_with_the_total() {
    let s = session(10, 4);
    assert_ok!(chunk_target(&s, 0, t0()), 0..4);
    assert_ok!(chunk_target(&s, 2, t0()), 8..10);
    assert_err!(
        chunk_target(&s, 3, t0()),
        Error::ChunkOutOfRange { index: 3, total: 3 }
    );
    assert_err!(
        chunk_target(&s, u64::MAX, t0()),
        Error::ChunkOutOfRange {
            index: u64::MAX,
            total: 3
        }
    );
    assert_err!(
        record_chunk(s, 3, receipt(12..16, "x"), t0(), &timeouts()),
        Error::ChunkOutOfRange { index: 3, total: 3 }
    );
}

#[test]
fn a_file_that_divides_evenly_has_full_last_chunk() {
    let s = session(12, 4);
    assert_eq!(s.total_chunks(), 3);
    assert_ok!(chunk_target(&s, 2, t0()), 8..12);
    assert_err!(
        chunk_target(&s, 3, t0()),
        Error::ChunkOutOfRange { index: 3, total: 3 }
    );
}

// ---- exact chunk length ----

#[test]
fn every_chunk_but_the_last_has_exactly_the_chunk_size() {
    let s = session(10, 4);
    for (index, range) in [(0, 0..4), (1, 4..8), (2, 8..10)] {
        let (next, replaced) = record_chunk(
            s.clone(),
            index,
            receipt(range.clone(), "ok"),
            t0(),
            &timeouts(),
        )
        .unwrap();
        assert_eq!(replaced, None);
        assert_eq!(ledger_ranges(&next), [range]);
    }
}

#[test]
fn a_receipt_of_the_wrong_range_is_refused() {
    let s = session(10, 4);
    let cases = [
        (0, 0..3, 4, 3),  // short
        (0, 0..5, 4, 5),  // long
        (1, 0..4, 4, 4),  // right length, wrong offset
        (1, 5..9, 4, 4),  // right length, shifted
        (2, 8..12, 2, 4), // the last chunk padded to a full chunk
        (2, 8..9, 2, 1),  // the last chunk truncated
        (1, 4..4, 4, 0),  // empty
    ];
    for (index, range, expected, actual) in cases {
        let result = record_chunk(
            s.clone(),
            index,
            receipt(range.clone(), "bad"),
            t0(),
            &timeouts(),
        );
        match result {
            Err(Error::ChunkLength {
                index: i,
                expected: e,
                actual: BodyLength::Exactly(a),
            }) => assert_eq!((i, e, a), (index, expected, actual), "{range:?}"),
            other => panic!("chunk {index} with {range:?}: {other:?}"),
        }
    }
}

// ---- duplicates and retries ----

#[test]
fn a_retried_chunk_replaces_the_old_receipt_and_returns_it() {
    let s = record(session(10, 4), 1, t0(), "first");
    let (s, replaced) = record_chunk(s, 1, receipt(4..8, "second"), t0(), &timeouts()).unwrap();
    let replaced = replaced.expect("the first receipt is returned");
    assert_eq!(replaced.part.as_str(), "first");
    assert_eq!(replaced.range(), 4..8);
    let ledger = s.state.ledger().unwrap();
    assert_eq!(ledger.parts().len(), 1);
    assert_eq!(ledger.part_at(4).unwrap().part.as_str(), "second");
    assert_eq!(received_chunks(&s), [1]);
}

#[test]
fn a_retry_of_the_wrong_length_leaves_the_first_receipt() {
    let s = record(session(10, 4), 1, t0(), "first");
    assert_err!(
        record_chunk(s.clone(), 1, receipt(4..7, "short"), t0(), &timeouts()),
        Error::ChunkLength { index: 1, .. }
    );
    assert_eq!(
        s.state.ledger().unwrap().part_at(4).unwrap().part.as_str(),
        "first"
    );
}
