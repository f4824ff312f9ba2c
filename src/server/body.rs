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
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use super::MAX_BODY_BYTES;

/// A whole body must arrive within this: below the Heroku router's 30 s, so a client that
/// sends its headers and stalls cannot hold a connection (and a worker's attention) longer.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a body was not read; the caller answers in its own dialect (SOAP fault or JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    TooLarge,
    Unreadable,
    TooSlow,
}

impl BodyRefusal {
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unreadable => StatusCode::BAD_REQUEST,
            Self::TooSlow => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn message(self) -> String {
        match self {
            Self::TooLarge => format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            Self::Unreadable => "the request body could not be read".to_owned(),
            Self::TooSlow => format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        }
    }
}

/// The body, or the response `refuse` builds instead: for a body over the limit, a stream
/// that failed, or one that did not finish within [`BODY_READ_TIMEOUT`]. A refused body left
/// unread closes the connection.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    refuse: impl FnOnce(BodyRefusal) -> HttpResponse,
) -> Result<web::Bytes, HttpResponse> {
    let declared = declared_length(req);
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(hold_unread(refuse(BodyRefusal::TooLarge), payload));
    }
    let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        let next = tokio::time::timeout_at(deadline, payload.next()).await;
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) => return Err(refuse(BodyRefusal::Unreadable)),
            Ok(None) => break,
            Err(_) => return Err(hold_unread(refuse(BodyRefusal::TooSlow), payload)),
        };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(hold_unread(refuse(BodyRefusal::TooLarge), payload));
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
            let discard = |_| HttpResponse::BadRequest().finish();
            let _ = read_limited(req, payload, discard).await;
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
