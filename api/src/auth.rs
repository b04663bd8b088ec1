//! The bearer token every route but `/health` and `/metrics` asks for.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use subtle::ConstantTimeEq;

use crate::Access;

/// Routes anyone may call: probes and scrapers carry no token.
const OPEN: &[&str] = &["/health", "/metrics"];

/// Whether `presented` is `expected`, taking as long whatever they hold
/// (lengths aside).
fn same_token(presented: &[u8], expected: &[u8]) -> bool {
    presented.ct_eq(expected).into()
}

pub(crate) async fn check(
    access: &Access,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Access::Token(expected) = access else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    if OPEN.contains(&req.path()) {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let why = match presented {
        None => "no bearer token: send Authorization: Bearer <token>",
        Some(t) if same_token(t, expected.as_bytes()) => {
            return next.call(req).await.map(|r| r.map_into_boxed_body());
        }
        Some(_) => "wrong bearer token",
    };
    let response = HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
        .json(serde_json::json!({ "error": why }));
    Ok(req.into_response(response))
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cret", b"s3creT"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
    }
}
