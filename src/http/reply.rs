//! Small builders of replies shared by the dialects.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::Reply;

/// A reply with no body.
pub(crate) fn empty(status: StatusCode) -> Reply {
    let mut reply = http::Response::new(Bytes::new());
    *reply.status_mut() = status;
    reply
}

/// Sets a header whose name and value are made at run time; a value that is
/// not a valid header value is left out.
pub(crate) fn set(headers: &mut HeaderMap, name: &str, value: String) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(&value),
    ) {
        headers.insert(name, value);
    }
}
