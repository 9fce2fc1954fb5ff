//! ApiVersions (key 18): what Sluice speaks. v0–v4; an unknown version gets a v0-shaped answer with
//! UNSUPPORTED_VERSION and the full list (KIP-511) so the client retries at a version we know.
//! Optional tagged fields (features) are sent only when they carry values, as Kafka does: librdkafka
//! 2.0.2 misparses them at their defaults.

use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{Reply, RequestContext, SUPPORTED_APIS};
use crate::broker::Broker;

fn api_list() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(k, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *k as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect()
}

/// Kafka's rule for `client_software_name`/`version` (v3+).
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

pub async fn handle(_broker: &Arc<Broker>, ctx: &RequestContext, req: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = api_list();
    if ctx.api_version >= 3
        && (!valid_software_field(&req.client_software_name) || !valid_software_field(&req.client_software_version))
    {
        resp.error_code = ResponseError::InvalidRequest.code();
    }
    resp
}

/// The answer to an ApiVersions request at a version we do not know: v0 encoding.
pub fn unsupported_version(ctx: &RequestContext) -> Reply {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = ResponseError::UnsupportedVersion.code();
    resp.api_keys = api_list();
    let v0 = RequestContext { api_version: 0, ..ctx.clone() };
    v0.respond(&resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_names_follow_kafka_regex() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("apache-kafka-java"));
        assert!(valid_software_field("2.15.0"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-bad"));
        assert!(!valid_software_field("has space"));
    }
}
