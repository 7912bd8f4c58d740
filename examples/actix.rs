//! The session REST API on actix-web 4: the same engine as the axum example
//! server (filesystem store and sink, background sweep), showing that the
//! core needs no particular framework. One default service converts the
//! request to the `http` 1.x types, bridges the body, calls
//! [`RestApi::handle`] and converts the reply back.
//!
//! ```text
//! cargo run --example actix -- --addr 127.0.0.1:8081 --data-dir ./data \
//!     [--chunk-size BYTES] [--expiry SECS] [--sweep-interval SECS]
//! ```

use actix_web::http::StatusCode as AxStatus;
use actix_web::http::header::{HeaderName as AxName, HeaderValue as AxValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use resumable::http::Endpoint;
use tokio::sync::mpsc;

#[path = "common/mod.rs"]
mod common;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::init();
    let (engine, sweeper) = args.engine().await?;
    let api = web::Data::new(args.endpoint(engine));
    tracing::info!(addr = %args.addr, data_dir = %args.data_dir.display(), "listening");
    // actix-web handles signals itself: SIGTERM stops gracefully, Ctrl-C at once.
    HttpServer::new(move || {
        App::new()
            .app_data(api.clone())
            .default_service(web::to(handle))
    })
    .bind(args.addr)?
    .run()
    .await?;
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn handle(
    api: web::Data<Endpoint>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    // actix-web 4 is on `http` 0.2: rebuild method, URI and headers as 1.x.
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let Ok(request) = builder.body(()) else {
        return HttpResponse::BadRequest().finish();
    };
    let (parts, ()) = request.into_parts();
    let owner = common::owner_of(&parts.headers);
    // The payload is `!Send`, but the engine wants a `Send + 'static` body
    // (it boxes it for the sink trait). The handler future need not be
    // `Send`, so the engine runs right here on the actix worker, and a local
    // task on the same worker pumps the payload into a bounded channel whose
    // receiver is the body. Capacity 4 keeps back-pressure (the socket is
    // read only as fast as the sink writes). Once the engine drops the body,
    // or the client leaves and this future is dropped, the pump stops.
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    actix_web::rt::spawn(async move {
        loop {
            let item = tokio::select! {
                item = payload.next() => item,
                () = tx.closed() => break,
            };
            let Some(item) = item else { break };
            if tx.send(item.map_err(std::io::Error::other)).await.is_err() {
                break;
            }
        }
    });
    let body = StreamBody::new(
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|item| item.map(Frame::data)),
    );

    // And back: status and headers by number and bytes into the 0.2 types.
    let Some(reply) = api.handle(&parts, &owner, body).await else {
        return HttpResponse::NotFound().finish();
    };
    let status =
        AxStatus::from_u16(reply.status().as_u16()).unwrap_or(AxStatus::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in reply.headers() {
        if let (Ok(n), Ok(v)) = (
            AxName::from_bytes(name.as_str().as_bytes()),
            AxValue::from_bytes(value.as_bytes()),
        ) {
            response.append_header((n, v));
        }
    }
    response.body(reply.into_body())
}
