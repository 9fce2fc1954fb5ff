//! UpdateFeatures (key 57), v0–v2: changes finalized feature levels, as Kafka 4.1's controller
//! answers it (`ControllerApis.handleUpdateFeatures`, `QuorumController.updateFeatures`,
//! `FeatureControlManager.updateFeatures`; the rules are in [`crate::features::plan_update`]).
//!
//! - Needs ALTER on the cluster; otherwise CLUSTER_AUTHORIZATION_FAILED at the top level.
//! - All or nothing: the first refused update fails the request with INVALID_UPDATE_VERSION at
//!   the top level ("The update failed for all features since the following feature had an
//!   error: …") and no per-feature results. On success v0–v1 list every update with NONE (Kafka's
//!   message for it is "NONE"); v2 has no per-feature results (KIP-1022).
//! - The upgrade type is v1's `UpgradeType`. v0's `AllowDowngrade` is not read, as Kafka's
//!   controller does not read it: a v0 update is always an upgrade.
//! - `ValidateOnly` (v1+) checks without changing anything. Otherwise the new levels are
//!   persisted with the node's metadata and the finalized epoch grows by one, so the next
//!   ApiVersions reports them; the transaction coordinator and the KIP-848 handlers read the
//!   levels on every request.

use std::sync::Arc;

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::features::{plan_update, UpgradeType};

fn failed(code: ResponseError, message: String) -> UpdateFeaturesResponse {
    let mut resp = UpdateFeaturesResponse::default();
    resp.error_code = code.code();
    resp.error_message = Some(StrBytes::from_string(message));
    resp
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, req: UpdateFeaturesRequest) -> UpdateFeaturesResponse {
    if !ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        return failed(
            ResponseError::ClusterAuthorizationFailed,
            format!("Request {:?} v{} needs ALTER permission.", ctx.api_key, ctx.api_version),
        );
    }
    let updates: Vec<(String, i16, UpgradeType)> = req
        .feature_updates
        .iter()
        .map(|u| (u.feature.to_string(), u.max_version_level, UpgradeType::from_code(u.upgrade_type)))
        .collect();
    let validate_only = ctx.api_version >= 1 && req.validate_only;
    // The plan must be made against the levels it replaces: hold the admin lock across both, as
    // Kafka's controller is one thread. Persisting fsyncs, so it runs on a blocking thread.
    let b = broker.clone();
    let outcome = crate::context::spawn_blocking(move || {
        let _admin = b.topic_admin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = b.metadata.features();
        match plan_update(&current, &updates, b.node_id()) {
            Err(message) => Err((ResponseError::InvalidUpdateVersion, message)),
            Ok(_) if validate_only || updates.is_empty() => Ok(()),
            Ok(levels) => match b.metadata.set_features(levels) {
                Ok(f) => {
                    tracing::info!(epoch = f.epoch, levels = ?f.levels, "finalized features updated");
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(error = %e, "persisting finalized features failed");
                    Err((crate::error::metadata_error(&e), e.to_string()))
                }
            },
        }
    })
    .await
    .unwrap_or_else(|e| Err((ResponseError::UnknownServerError, e.to_string())));
    match outcome {
        Err((code, message)) => failed(
            code,
            format!("The update failed for all features since the following feature had an error: {message}"),
        ),
        Ok(()) => {
            let mut resp = UpdateFeaturesResponse::default();
            // Kafka's controller sends null here (the codec's default is "").
            resp.error_message = None;
            if ctx.api_version <= 1 {
                resp.results = req
                    .feature_updates
                    .into_iter()
                    .map(|u| {
                        let mut r = UpdatableFeatureResult::default();
                        r.feature = u.feature;
                        r.error_message = Some(StrBytes::from_static_str("NONE"));
                        r
                    })
                    .collect();
            }
            resp
        }
    }
}
