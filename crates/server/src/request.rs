//! Reading a request body: one path for every route that reads one (MORE and BFV inference, key uploads,
//! training uploads, challenge answers).
//!
//! A route states its [`BodyRules`]: the media type it takes, the largest body, the memory the request
//! holds per body byte received, and the time allowed from the request's headers to its complete body.
//! [`BodyReader`] then, in this order:
//!
//! 1. checks the `Content-Type` (415) and a declared `Content-Length` against the limit (413), and that
//!    the body could ever fit the memory budget (503), before reading a byte;
//! 2. reads the body frame by frame, refusing more than the limit (413) and stopping at the deadline
//!    (408): a client trickling bytes cannot hold a request open longer than its route allows;
//! 3. reserves memory from a budget **as the bytes arrive** (in steps of [`RESERVE_STEP`] body bytes), not
//!    from what the client announced: sockets that send headers and then nothing hold next to nothing, so
//!    they cannot starve other clients of the budget. When the budget cannot grow, 503 `overloaded`.
//!
//! The reservation is handed on with the body ([`Received`], [`BodyReader::into_reservation`]) to the work
//! the body pays for — moved into the queued inference job or the blocking task — so memory stays reserved
//! exactly as long as that work runs, even when the client disconnects and the handler is dropped.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::budget::{Budget, Reservation};
use crate::error::ApiError;

/// Body bytes between two growths of a reservation.
pub const RESERVE_STEP: usize = 64 << 10;

/// What a route accepts as its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRules {
    /// The media type (`Content-Type` essence; parameters such as `; charset=utf-8` are ignored).
    pub media_type: &'static str,
    /// Largest body, bytes.
    pub limit: usize,
    /// Bytes reserved from the budget per body byte received (the body and what it is decoded into).
    pub per_byte: usize,
    /// Time allowed from the request's headers to its last body byte.
    pub deadline: Duration,
}

/// A complete body and the memory reserved for it.
#[derive(Debug)]
pub struct Received {
    /// The body.
    pub bytes: Bytes,
    /// Its reservation (at least [`BodyRules::per_byte`] times its length).
    pub reservation: Reservation,
}

/// Reads one request body under its route's [`BodyRules`] (see the module docs).
#[derive(Debug)]
pub struct BodyReader {
    body: Body,
    rules: BodyRules,
    declared: Option<u64>,
    deadline: Instant,
    budget: Budget,
    reservation: Reservation,
    received: usize,
}

/// The `Content-Length` a request declares, if any (a value that is not a number counts as none: hyper
/// refuses such requests before they reach a handler).
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
}

/// Checks that the request's `Content-Type` is `wanted`: 415 `unsupported_media_type` naming both if not.
pub fn check_media_type(headers: &HeaderMap, wanted: &str) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>"));
    match ct.map(|c| c.split(';').next().unwrap_or("").trim()) {
        Some(essence) if essence.eq_ignore_ascii_case(wanted) => Ok(()),
        _ => Err(ApiError::unsupported_media_type(wanted, ct)),
    }
}

/// 503 `overloaded` for a reservation of `bytes` that `budget` cannot give now, saying whether waiting
/// can help.
pub fn over_budget(budget: &Budget, bytes: usize) -> ApiError {
    if budget.could_fit(bytes) {
        ApiError::unavailable("overloaded", "the server's memory budget is in use; retry shortly")
    } else {
        ApiError::unavailable(
            "overloaded",
            format!(
                "this request needs {} KiB of the server's memory budget of {} KiB: send a smaller request",
                bytes.div_ceil(1024),
                budget.total() >> 10
            ),
        )
    }
}

impl BodyReader {
    /// Starts reading `body` under `rules`, reserving from `budget`. Checks the media type and the
    /// declared length first; the deadline counts from now (the handler runs once the headers are in).
    pub fn new(headers: &HeaderMap, body: Body, rules: BodyRules, budget: &Budget) -> Result<BodyReader, ApiError> {
        check_media_type(headers, rules.media_type)?;
        let declared = declared_length(headers);
        if let Some(len) = declared {
            if len > rules.limit as u64 {
                return Err(ApiError::too_large(len, rules.limit));
            }
            let needs = (len as usize).saturating_mul(rules.per_byte);
            if !budget.could_fit(needs) {
                return Err(over_budget(budget, needs));
            }
        }
        Ok(BodyReader {
            body,
            rules,
            declared,
            deadline: Instant::now() + rules.deadline,
            budget: budget.clone(),
            reservation: Reservation::empty(),
            received: 0,
        })
    }

    /// The declared `Content-Length`, if any (already checked against the limit).
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// The largest body the route accepts.
    pub fn limit(&self) -> usize {
        self.rules.limit
    }

    /// Body bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The next chunk of the body, `None` at its end. Errors: 413 past the limit, 408 past the deadline,
    /// 503 when the budget cannot hold the bytes, 400 when the connection breaks.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => return Err(timeout(self.rules.deadline, self.received)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(ApiError::malformed(format!("could not read the request body: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            let total = self.received + data.len();
            if total > self.rules.limit {
                return Err(ApiError::too_large(
                    self.declared.unwrap_or(total as u64).max(total as u64),
                    self.rules.limit,
                ));
            }
            // Reserve ahead in whole steps (never past the declared length or the limit), so a body costs a
            // handful of budget operations; if the step does not fit, exactly what arrived.
            let end = self.declared.map_or(self.rules.limit, |d| d as usize).max(total);
            let ahead = total.next_multiple_of(RESERVE_STEP).min(end);
            if !self.budget.grow(&mut self.reservation, ahead.saturating_mul(self.rules.per_byte)) {
                self.reserve(total.saturating_mul(self.rules.per_byte))?;
            }
            self.received = total;
            return Ok(Some(data));
        }
    }

    /// Grows the reservation to at least `bytes` in all (e.g. a forward pass's memory once the body tells
    /// how many samples it holds); 503 `overloaded` if the budget cannot give it now.
    pub fn reserve(&mut self, bytes: usize) -> Result<(), ApiError> {
        if self.budget.grow(&mut self.reservation, bytes) { Ok(()) } else { Err(over_budget(&self.budget, bytes)) }
    }

    /// Reads the whole body, with its reservation.
    pub async fn read_all(mut self) -> Result<Received, ApiError> {
        let bytes = self.read_rest().await?;
        Ok(Received { bytes, reservation: self.reservation })
    }

    /// Reads the rest of the body, keeping the reader (and its reservation) for a later
    /// [`BodyReader::reserve`]. A body that arrived in one frame is kept without a copy.
    pub async fn read_rest(&mut self) -> Result<Bytes, ApiError> {
        let mut first: Option<Bytes> = None;
        let mut buf: Vec<u8> = Vec::new();
        while let Some(data) = self.chunk().await? {
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                Some(f) => {
                    buf.extend_from_slice(&f);
                    buf.extend_from_slice(&data);
                }
                None => buf.extend_from_slice(&data),
            }
        }
        Ok(first.unwrap_or_else(|| Bytes::from(buf)))
    }

    /// The reservation, for the work the body pays for.
    pub fn into_reservation(self) -> Reservation {
        self.reservation
    }
}

fn timeout(allowed: Duration, received: usize) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        format!(
            "the request body took too long: {received} bytes arrived in the {:.0} s allowed; send it faster or in smaller parts",
            allowed.as_secs_f64()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use futures_util::stream;

    fn headers(ct: &str, len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        if let Some(l) = len {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(l));
        }
        h
    }

    const RULES: BodyRules = BodyRules {
        media_type: "application/octet-stream",
        limit: 1 << 20,
        per_byte: 2,
        deadline: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn checks_come_before_reading() {
        let budget = Budget::new(4 << 20);
        let e = BodyReader::new(&headers("text/plain", None), Body::empty(), RULES, &budget).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (415, "unsupported_media_type"));
        assert!(e.message.contains("application/octet-stream") && e.message.contains("text/plain"), "{}", e.message);
        let e = BodyReader::new(&headers("application/octet-stream", Some(2 << 20)), Body::empty(), RULES, &budget)
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 413);
        let small = Budget::new(1 << 20);
        let e = BodyReader::new(&headers("Application/Octet-Stream; x=1", Some(1 << 20)), Body::empty(), RULES, &small)
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (503, "overloaded"));
        assert!(e.message.contains("send a smaller request"), "{}", e.message);
    }

    #[tokio::test]
    async fn the_reservation_follows_the_bytes_received() {
        let budget = Budget::new(8 << 20);
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..4).map(|_| Ok(Bytes::from(vec![7u8; 100_000]))).collect();
        let mut r = BodyReader::new(
            &headers("application/octet-stream", None),
            Body::from_stream(stream::iter(chunks)),
            RULES,
            &budget,
        )
        .unwrap();
        assert_eq!(budget.in_use(), 0, "nothing reserved before a byte arrives");
        r.chunk().await.unwrap().unwrap();
        assert_eq!(budget.in_use(), 2 * 100_000usize.next_multiple_of(RESERVE_STEP));
        let got = r.read_all().await.unwrap();
        assert_eq!(got.bytes.len(), 300_000, "the rest of the body");
        assert_eq!(got.reservation.bytes(), 2 * 400_000usize.next_multiple_of(RESERVE_STEP));
        drop(got);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn over_the_limit_the_deadline_or_the_budget_is_an_error() {
        let budget = Budget::new(8 << 20);
        let big: Vec<Result<Bytes, std::io::Error>> = (0..11).map(|_| Ok(Bytes::from(vec![0u8; 100_000]))).collect();
        let r = BodyReader::new(
            &headers("application/octet-stream", None),
            Body::from_stream(stream::iter(big)),
            RULES,
            &budget,
        )
        .unwrap();
        assert_eq!(r.read_all().await.unwrap_err().status.as_u16(), 413);

        let slow = stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), n + 1))
        });
        let rules = BodyRules { deadline: Duration::from_millis(200), ..RULES };
        let r = BodyReader::new(&headers("application/octet-stream", None), Body::from_stream(slow), rules, &budget)
            .unwrap();
        let e = r.read_all().await.unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (408, "timeout"));
        assert_eq!(budget.in_use(), 0, "released with the reader");

        let tight = Budget::new(256 << 10);
        let two: Vec<Result<Bytes, std::io::Error>> = (0..2).map(|_| Ok(Bytes::from(vec![0u8; 100_000]))).collect();
        let r = BodyReader::new(
            &headers("application/octet-stream", None),
            Body::from_stream(stream::iter(two)),
            RULES,
            &tight,
        )
        .unwrap();
        assert_eq!(r.read_all().await.unwrap_err().code, "overloaded");
    }
}
