//! ListTransactions (key 66), v0–v2: transactional ids with their producer id and state,
//! filtered by state names (unknown names are echoed back in `unknown_state_filters`), producer
//! ids, minimum running time (v1, KIP-994) and a transactional id regular expression (v2).

use std::sync::Arc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::authz::{AclOperation, Resource};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::txn::TxnState;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut resp = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &req.state_filters {
        match TxnState::from_name(name) {
            Some(s) => states.push(s),
            None => resp.unknown_state_filters.push(name.clone()),
        }
    }
    let pattern = match req.transactional_id_pattern.as_deref().filter(|p| ctx.api_version >= 2 && !p.is_empty()) {
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(_) => {
                resp.error_code = ResponseError::InvalidRegularExpression.code();
                return resp;
            }
        },
        None => None,
    };
    let now = now_ms();
    let mut all = broker.txns.all().await;
    all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    for m in all {
        let state_ok = states.is_empty() || states.contains(&m.state);
        let pid_ok = req.producer_id_filters.is_empty() || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id);
        // KIP-994: only transactions running longer than the filter (ongoing ones have a start).
        let duration_ok = ctx.api_version < 1
            || req.duration_filter < 0
            || (m.start_ms >= 0 && now - m.start_ms >= req.duration_filter);
        let id_ok = pattern.as_ref().is_none_or(|r| r.is_match(&m.transactional_id));
        if !(state_ok && pid_ok && duration_ok && id_ok)
            || m.state == TxnState::Dead
            || !ctx.authorize(AclOperation::Describe, Resource::TransactionalId(&m.transactional_id))
        {
            continue;
        }
        let mut s = TransactionState::default();
        s.transactional_id = TransactionalId(StrBytes::from_string(m.transactional_id));
        s.producer_id = ProducerId(m.producer_id);
        s.transaction_state = StrBytes::from_static_str(m.state.name());
        resp.transaction_states.push(s);
    }
    resp
}
