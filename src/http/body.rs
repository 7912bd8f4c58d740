//! Request bodies: any [`http_body::Body`] becomes the byte stream the engine
//! reads, and its trailers, if any, reach the dialect.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyStream;

use crate::error::BoxError;

/// Where the trailers of a body are left when they arrive (before the end of
/// the data stream is reported).
pub(crate) type TrailerSink = Arc<dyn Fn(&HeaderMap) + Send + Sync>;

/// The data frames of `body` as a stream of bytes; trailers are handed to
/// `on_trailers`.
pub(crate) fn data_stream<B>(
    body: B,
    on_trailers: Option<TrailerSink>,
) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BodyStream::new(body).filter_map(move |frame| {
        let item = match frame {
            Err(e) => Some(Err(e.into())),
            Ok(frame) => match frame.into_data() {
                Ok(data) => Some(Ok(data)),
                Err(frame) => {
                    if let (Ok(trailers), Some(sink)) = (frame.into_trailers(), &on_trailers) {
                        sink(&trailers);
                    }
                    None
                }
            },
        };
        std::future::ready(item)
    })
}
