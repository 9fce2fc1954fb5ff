//! Per-topic throughput accounting for Produce and Fetch, done in `dispatch` around the handlers
//! so the handlers stay free of metrics code.
//!
//! Produce: before the handler consumes the request, each partition's batch size and record count
//! (from the batch header's `records_count`, no decoding) are noted in the connection's reusable
//! buffer in request order; afterwards they are counted for the partitions whose response code is
//! NONE (the handler answers partitions in request order). Fetch: the bytes of every returned
//! partition's records, by topic.

use kafka_protocol::messages::{FetchResponse, ProduceRequest, ProduceResponse};
use sluice_protocol::batch::RecordBatch;

use super::{ConnectionMetrics, TopicRef};

impl ConnectionMetrics {
    /// Notes each partition's batch bytes and record count of a produce request (call before the
    /// handler takes the request).
    pub fn note_produce(&mut self, req: &ProduceRequest, by_id: bool) {
        self.produce_scratch.clear();
        for td in &req.topic_data {
            let topic = if by_id { TopicRef::Id(td.topic_id) } else { TopicRef::Name(td.name.0.clone()) };
            for pd in &td.partition_data {
                let (bytes, records) = match &pd.records {
                    Some(b) => {
                        let mut view = b.clone();
                        let records = match RecordBatch::split_first(&mut view) {
                            Ok(Some(batch)) => batch.records_count().max(0) as u64,
                            _ => 0,
                        };
                        (b.len() as u64, records)
                    }
                    None => (0, 0),
                };
                self.produce_scratch.push((topic.clone(), bytes, records));
            }
        }
    }

    /// Counts the noted partitions that were appended: those whose code in `resp` is NONE, or all
    /// of them when `resp` is `None` (an `acks=0` request that fully succeeded).
    pub fn count_produced(
        &mut self,
        resp: Option<&ProduceResponse>,
        resolve_id: impl Fn(&uuid::Uuid) -> Option<String>,
    ) {
        let mut scratch = std::mem::take(&mut self.produce_scratch);
        let mut codes = resp
            .into_iter()
            .flat_map(|r| r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)));
        for (topic, bytes, records) in &scratch {
            let ok = match resp {
                Some(_) => codes.next() == Some(0),
                None => true,
            };
            if ok && *bytes > 0 {
                if let Some(c) = self.topic(topic, &resolve_id) {
                    c.produce_bytes.inc_by(*bytes);
                    c.produce_records.inc_by(*records);
                }
            }
        }
        scratch.clear();
        self.produce_scratch = scratch;
    }

    /// Counts the record bytes a fetch response returns, by topic.
    pub fn count_fetched(
        &mut self,
        resp: &FetchResponse,
        by_id: bool,
        resolve_id: impl Fn(&uuid::Uuid) -> Option<String>,
    ) {
        for t in &resp.responses {
            let bytes: usize = t.partitions.iter().map(|p| p.records.as_ref().map_or(0, |r| r.len())).sum();
            if bytes == 0 {
                continue;
            }
            let topic = if by_id { TopicRef::Id(t.topic_id) } else { TopicRef::Name(t.topic.0.clone()) };
            if let Some(c) = self.topic(&topic, &resolve_id) {
                c.fetch_bytes.inc_by(bytes as u64);
            }
        }
    }
}
