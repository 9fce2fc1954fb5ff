//! ApiVersions (key 18): what Sluice speaks. v0–v4; an unknown version gets a v0-shaped answer with
//! UNSUPPORTED_VERSION and the full list (KIP-511) so the client retries at a version we know.
//! From v3 the tagged fields carry the features ([`crate::features`]) as Kafka 4.1's broker sends
//! them: the supported ranges (below v4 without those whose minimum is 0, KAFKA-17492: older
//! clients choke on them), the finalized levels other than 0 (min = max = the level) and their
//! epoch. `zk_migration_ready` stays false (a broker never reports it). Tagged fields at their
//! defaults are not sent, as Kafka does: librdkafka 2.0.2 misparses them.

use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
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

/// The feature fields of a v3+ response.
fn add_features(resp: &mut ApiVersionsResponse, broker: &Broker, version: i16) {
    for (name, min, max) in crate::features::SUPPORTED {
        if version < 4 && *min == 0 {
            continue;
        }
        let mut k = SupportedFeatureKey::default();
        k.name = StrBytes::from_static_str(name);
        k.min_version = *min;
        k.max_version = *max;
        resp.supported_features.push(k);
    }
    let finalized = broker.metadata.features();
    resp.finalized_features_epoch = finalized.epoch;
    for (name, level) in finalized.levels.iter().filter(|(_, l)| **l != 0) {
        let mut k = FinalizedFeatureKey::default();
        k.name = StrBytes::from_string(name.clone());
        k.min_version_level = *level;
        k.max_version_level = *level;
        resp.finalized_features.push(k);
    }
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = api_list();
    if ctx.api_version >= 3 {
        add_features(&mut resp, broker, ctx.api_version);
    }
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
