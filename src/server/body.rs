//! Reading a webhook body of at most [`MAX_BODY_BYTES`], refusing a longer one with 413 while
//! it is still streaming, and then closing the connection rather than reading the rest; and
//! refusing a request before its body is read at all ([`refuse_before_reading`]).
//!
//! `web::Bytes` with a `PayloadConfig` limit answers 413 early too, but it drops the request
//! payload first; for a chunked request actix then keeps the connection alive by reading and
//! discarding the rest of the body, however long (seen in `corpus::a_100_mb_*`: 3 MiB read
//! before the 413, ~90 MiB after it). Actix closes instead when the payload is still held
//! while the response is sent, so the refusal's body holds it.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use super::MAX_BODY_BYTES;

/// The body, or the response to send instead: `too_large` (built by the caller in its own
/// dialect, SOAP fault or JSON) for a body over the limit, `unreadable` if the stream failed.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    too_large: impl FnOnce() -> HttpResponse,
    unreadable: impl FnOnce() -> HttpResponse,
) -> Result<web::Bytes, HttpResponse> {
    let declared = declared_length(req);
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(hold_unread(too_large(), payload));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return Err(unreadable());
        };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(hold_unread(too_large(), payload));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A refused request body up to this size is read and discarded to keep the connection alive;
/// a longer one closes the connection unread.
const DISCARD_UNREAD_BYTES: u64 = 64 * 1024;

/// `refusal`, sent without looking at the body. actix closes any connection whose request
/// body was left unread, so a small announced body is read and dropped to keep the connection
/// (a refused flood would otherwise cost a TCP connection a request); a long or chunked one is
/// never read: the refusal holds the payload, so actix closes instead of draining it.
pub async fn refuse_before_reading(
    req: &HttpRequest,
    payload: web::Payload,
    refusal: HttpResponse,
) -> HttpResponse {
    match declared_length(req) {
        Some(length) if length <= DISCARD_UNREAD_BYTES => {
            let discard = || HttpResponse::BadRequest().finish();
            let _ = read_limited(req, payload, discard, discard).await;
            refusal
        }
        _ => hold_unread(refusal, payload),
    }
}

/// The request's `Content-Length`, if it has a valid one (a chunked body has none).
fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// `response`, whose body keeps the unread `payload` alive until it has been sent, so that
/// actix closes the connection instead of reading the rest of the body.
fn hold_unread(response: HttpResponse, payload: web::Payload) -> HttpResponse {
    let (response, body) = response.into_parts();
    response
        .set_body(HoldingPayload {
            body,
            _unread: payload,
        })
        .map_into_boxed_body()
}

struct HoldingPayload {
    body: BoxBody,
    _unread: web::Payload,
}

impl MessageBody for HoldingPayload {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// The status of a body over the limit.
pub const TOO_LARGE: StatusCode = StatusCode::PAYLOAD_TOO_LARGE;
