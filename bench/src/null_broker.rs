//! The baseline: a "null broker" that speaks just enough of the Kafka protocol for librdkafka to
//! produce and consume — ApiVersions, Metadata, CreateTopics, Produce, Fetch and ListOffsets — and
//! keeps every batch in memory. It does no validation, no disk I/O and no fsync, so a workload run
//! against it measures the client, the loopback network and the protocol codec; Sluice's result
//! divided by this one is the broker's own cost.
//!
//! It advertises the same API version ranges as Sluice (`broker/src/handlers/mod.rs`) so the
//! client negotiates the same request versions against both. There are no consumer groups (Sluice
//! has none yet either): consumers use manual partition assignment.
//!
//! Thread-safety: one tokio task per connection; the topic table is behind a `RwLock` and each
//! partition's batches behind their own `Mutex`, none held across an `.await`. Requests on one
//! connection are answered in order.
//!
//! Not hardened: a malformed frame closes the connection, and memory grows with everything
//! produced (that is the point — it never touches disk). Frames are capped at 100 MiB like
//! Sluice's `socket.request.max.bytes` default.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::request::{encode_response, parse_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The versions advertised: Sluice's ranges for the APIs both serve.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
];

const MAX_FRAME_BYTES: usize = 100 << 20;
const NODE_ID: i32 = 1;
/// Partitions of a topic created by a Metadata request (librdkafka's auto-create path).
const AUTO_CREATE_PARTITIONS: i32 = 1;
/// Error codes used (Kafka's `Errors.java`).
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// One partition's log: batches with their base offsets, in offset order.
#[derive(Default)]
struct PartitionLog {
    base_offsets: Vec<i64>,
    batches: Vec<Bytes>,
    log_end_offset: i64,
}

impl PartitionLog {
    /// Stamps the base offset into a copy of the batch (it sits outside the CRC) and keeps it.
    fn append(&mut self, records: &Bytes) -> i64 {
        let base = self.log_end_offset;
        let mut rest = records.clone();
        // A produce request may carry several concatenated batches; each needs its own offsets.
        while rest.len() >= 61 {
            let batch_len = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize + 12;
            if batch_len < 61 || batch_len > rest.len() {
                break;
            }
            let last_offset_delta = i32::from_be_bytes([rest[23], rest[24], rest[25], rest[26]]);
            let mut copy = BytesMut::with_capacity(batch_len);
            copy.put_i64(self.log_end_offset);
            copy.extend_from_slice(&rest[8..batch_len]);
            self.base_offsets.push(self.log_end_offset);
            self.batches.push(copy.freeze());
            self.log_end_offset += i64::from(last_offset_delta.max(0)) + 1;
            rest = rest.slice(batch_len..);
        }
        base
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (at least one batch).
    fn read(&self, offset: i64, max_bytes: usize) -> Option<Bytes> {
        if offset < 0 || offset > self.log_end_offset {
            return None;
        }
        if offset == self.log_end_offset {
            // Not the last batch: a response of only already-consumed records reads to
            // librdkafka as "message too large" and it keeps doubling its fetch size.
            return Some(Bytes::new());
        }
        let start = match self.base_offsets.binary_search(&offset) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        };
        let mut end = start;
        let mut total = 0;
        while end < self.batches.len() && (end == start || total + self.batches[end].len() <= max_bytes) {
            total += self.batches[end].len();
            end += 1;
        }
        Some(match end - start {
            0 => Bytes::new(),
            1 => self.batches[start].clone(),
            _ => {
                let mut out = BytesMut::with_capacity(total);
                for b in &self.batches[start..end] {
                    out.extend_from_slice(b);
                }
                out.freeze()
            }
        })
    }
}

struct Topic {
    id: uuid::Uuid,
    partitions: Vec<Mutex<PartitionLog>>,
}

/// The in-memory cluster.
pub struct NullBroker {
    advertised: SocketAddr,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Bumped on every append so long-polling fetches wake up.
    appended: watch::Sender<u64>,
}

impl NullBroker {
    pub fn new(advertised: SocketAddr) -> Arc<Self> {
        Arc::new(Self { advertised, topics: RwLock::new(HashMap::new()), appended: watch::channel(0).0 })
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    fn topic_by_id(&self, id: &uuid::Uuid) -> Option<(String, Arc<Topic>)> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.iter().find(|(_, t)| t.id == *id).map(|(n, t)| (n.clone(), t.clone()))
    }

    /// Creates a topic; `Err` with the existing one if the name is taken.
    fn create(&self, name: &str, partitions: i32) -> Result<Arc<Topic>, Arc<Topic>> {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(name) {
            return Err(t.clone());
        }
        let t = Arc::new(Topic {
            id: uuid::Uuid::new_v4(),
            partitions: (0..partitions.max(1)).map(|_| Mutex::new(PartitionLog::default())).collect(),
        });
        topics.insert(name.to_string(), t.clone());
        Ok(t)
    }
}

/// Accepts connections until the listener fails.
pub async fn serve(broker: Arc<NullBroker>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let broker = broker.clone();
        tokio::spawn(async move {
            // Errors only close this connection; the baseline has no one to report them to.
            let _ = serve_connection(broker, stream).await;
        });
    }
}

async fn serve_connection(broker: Arc<NullBroker>, stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let mut prefix = [0u8; 4];
        match rd.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = i32::from_be_bytes(prefix);
        anyhow::ensure!(len >= 0 && (len as usize) <= MAX_FRAME_BYTES, "bad frame size {len}");
        let mut body = BytesMut::zeroed(len as usize);
        rd.read_exact(&mut body).await?;
        let frame = parse_request(body.freeze())?;
        if let Some(resp) = handle(&broker, frame.api_key, &frame.header, frame.body).await? {
            wr.write_all(&resp).await?;
        }
        // Flush only when no further request is already buffered: pipelined produce requests
        // then share one write, which is what a broker with a writer task gets too.
        if rd.buffer().is_empty() {
            wr.flush().await?;
        }
    }
}

async fn handle(
    broker: &NullBroker,
    api_key: ApiKey,
    header: &kafka_protocol::messages::RequestHeader,
    mut body: Bytes,
) -> anyhow::Result<Option<Bytes>> {
    let version = header.request_api_version;
    let Some((_, min, max)) = SUPPORTED_APIS.iter().find(|(k, _, _)| *k == api_key) else {
        anyhow::bail!("unsupported api {api_key:?}");
    };
    let respond = |resp: &dyn ErasedEncodable, v: i16| -> anyhow::Result<Option<Bytes>> {
        Ok(Some(resp.encode_frame(header.correlation_id, api_key.response_header_version(v), v)?))
    };
    if version < *min || version > *max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer at v0 with UNSUPPORTED_VERSION and the list.
            let mut resp = api_versions();
            resp.error_code = 35;
            return respond(&resp, 0);
        }
        anyhow::bail!("unsupported version {version} of {api_key:?}");
    }
    match api_key {
        ApiKey::ApiVersions => respond(&api_versions(), version),
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut body, version)?;
            respond(&metadata(broker, req, version), version)
        }
        ApiKey::CreateTopics => {
            let req = CreateTopicsRequest::decode(&mut body, version)?;
            respond(&create_topics(broker, req), version)
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut body, version)?;
            let acks = req.acks;
            let resp = produce(broker, req, version >= 13);
            if acks == 0 {
                return Ok(None);
            }
            respond(&resp, version)
        }
        ApiKey::Fetch => {
            let req = FetchRequest::decode(&mut body, version)?;
            respond(&fetch(broker, req, version >= 13).await, version)
        }
        ApiKey::ListOffsets => {
            let req = ListOffsetsRequest::decode(&mut body, version)?;
            respond(&list_offsets(broker, req), version)
        }
        other => anyhow::bail!("no handler for {other:?}"),
    }
}

/// `encode_response` over the concrete response types, so `handle` can share one closure.
trait ErasedEncodable {
    fn encode_frame(&self, correlation_id: i32, header_version: i16, version: i16) -> anyhow::Result<Bytes>;
}

impl<M: Encodable> ErasedEncodable for M {
    fn encode_frame(&self, correlation_id: i32, header_version: i16, version: i16) -> anyhow::Result<Bytes> {
        Ok(encode_response(correlation_id, header_version, version, self)?)
    }
}

fn api_versions() -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = SUPPORTED_APIS
        .iter()
        .map(|(k, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *k as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    resp
}

fn describe(name: &str, topic: &Topic) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(name.to_string())));
    t.topic_id = topic.id;
    t.topic_authorized_operations = i32::MIN;
    t.partitions = (0..topic.partitions.len() as i32)
        .map(|i| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = i;
            p.leader_id = BrokerId(NODE_ID);
            p.leader_epoch = 0;
            p.replica_nodes = vec![BrokerId(NODE_ID)];
            p.isr_nodes = vec![BrokerId(NODE_ID)];
            p
        })
        .collect();
    t
}

fn metadata(broker: &NullBroker, req: MetadataRequest, version: i16) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(NODE_ID);
    b.host = StrBytes::from_string(broker.advertised.ip().to_string());
    b.port = i32::from(broker.advertised.port());
    resp.brokers = vec![b];
    resp.cluster_id = Some(StrBytes::from_static_str("null-broker"));
    resp.controller_id = BrokerId(NODE_ID);
    resp.cluster_authorized_operations = i32::MIN;
    let all = match &req.topics {
        None => true,
        Some(list) => list.is_empty() && version == 0,
    };
    if all {
        let topics = broker.topics.read().unwrap_or_else(|e| e.into_inner());
        resp.topics = topics.iter().map(|(n, t)| describe(n, t)).collect();
        return resp;
    }
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    for rt in req.topics.unwrap_or_default() {
        let described = match &rt.name {
            Some(name) => match broker.topic(name) {
                Some(t) => describe(name, &t),
                None if auto_create => {
                    let t = broker.create(name, AUTO_CREATE_PARTITIONS).unwrap_or_else(|existing| existing);
                    describe(name, &t)
                }
                None => {
                    let mut t = MetadataResponseTopic::default();
                    t.name = Some(name.clone());
                    t.error_code = UNKNOWN_TOPIC_OR_PARTITION;
                    t
                }
            },
            None => match broker.topic_by_id(&rt.topic_id) {
                Some((name, t)) => describe(&name, &t),
                None => {
                    let mut t = MetadataResponseTopic::default();
                    t.topic_id = rt.topic_id;
                    t.error_code = UNKNOWN_TOPIC_ID;
                    t
                }
            },
        };
        resp.topics.push(described);
    }
    resp
}

fn create_topics(broker: &NullBroker, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        let partitions = if t.num_partitions > 0 { t.num_partitions } else { AUTO_CREATE_PARTITIONS };
        match broker.create(&t.name.0, partitions) {
            Ok(created) => {
                r.topic_id = created.id;
                r.num_partitions = partitions;
                r.replication_factor = 1;
            }
            Err(_) => {
                r.error_code = TOPIC_ALREADY_EXISTS;
                r.num_partitions = -1;
                r.replication_factor = -1;
            }
        }
        resp.topics.push(r);
    }
    resp
}

fn produce(broker: &NullBroker, req: ProduceRequest, by_id: bool) -> ProduceResponse {
    let mut resp = ProduceResponse::default();
    for td in req.topic_data {
        let topic = if by_id { broker.topic_by_id(&td.topic_id).map(|(_, t)| t) } else { broker.topic(&td.name.0) };
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name;
        tr.topic_id = td.topic_id;
        for pd in td.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.log_append_time_ms = -1;
            match (topic.as_ref().and_then(|t| t.partitions.get(pd.index as usize)), pd.records) {
                (Some(log), Some(records)) => {
                    pr.base_offset = log.lock().unwrap_or_else(|e| e.into_inner()).append(&records);
                }
                _ => {
                    pr.error_code = UNKNOWN_TOPIC_OR_PARTITION;
                    pr.base_offset = -1;
                    pr.log_start_offset = -1;
                }
            }
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    broker.appended.send_modify(|n| *n = n.wrapping_add(1));
    resp
}

async fn fetch(broker: &NullBroker, req: FetchRequest, by_id: bool) -> FetchResponse {
    let mut changes = broker.appended.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let max_bytes = req.max_bytes.max(0) as usize;
    loop {
        changes.borrow_and_update();
        let (resp, total) = fetch_pass(broker, &req, by_id, max_bytes);
        if total >= req.min_bytes.max(0) as usize || tokio::time::Instant::now() >= deadline {
            return resp;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return fetch_pass(broker, &req, by_id, max_bytes).0,
            r = changes.changed() => if r.is_err() { return resp },
        }
    }
}

fn fetch_pass(broker: &NullBroker, req: &FetchRequest, by_id: bool, max_bytes: usize) -> (FetchResponse, usize) {
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    for ft in &req.topics {
        let topic = if by_id { broker.topic_by_id(&ft.topic_id).map(|(_, t)| t) } else { broker.topic(&ft.topic.0) };
        let mut tr = FetchableTopicResponse::default();
        tr.topic = ft.topic.clone();
        tr.topic_id = ft.topic_id;
        for fp in &ft.partitions {
            let mut pd = PartitionData::default();
            pd.partition_index = fp.partition;
            pd.preferred_read_replica = BrokerId(-1);
            match topic.as_ref().and_then(|t| t.partitions.get(fp.partition as usize)) {
                Some(log) => {
                    let log = log.lock().unwrap_or_else(|e| e.into_inner());
                    pd.high_watermark = log.log_end_offset;
                    pd.last_stable_offset = log.log_end_offset;
                    // Kafka's rule: the first partition with data may exceed the budget by a batch.
                    let budget = (fp.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
                    match log.read(fp.fetch_offset, if total == 0 { budget.max(1) } else { budget }) {
                        Some(records) if total > 0 && records.len() > budget => pd.records = Some(Bytes::new()),
                        Some(records) => {
                            total += records.len();
                            pd.records = Some(records);
                        }
                        None => pd.error_code = OFFSET_OUT_OF_RANGE,
                    }
                }
                None => {
                    pd.error_code = if by_id { UNKNOWN_TOPIC_ID } else { UNKNOWN_TOPIC_OR_PARTITION };
                    pd.high_watermark = -1;
                    pd.last_stable_offset = -1;
                    pd.log_start_offset = -1;
                }
            }
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    (resp, total)
}

fn list_offsets(broker: &NullBroker, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let topic = broker.topic(&t.name.0);
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.timestamp = -1;
            match topic.as_ref().and_then(|t| t.partitions.get(p.partition_index as usize)) {
                Some(log) => {
                    let leo = log.lock().unwrap_or_else(|e| e.into_inner()).log_end_offset;
                    // Latest is the log end; everything else (earliest, by time) is the start:
                    // the baseline never needs a timestamp index.
                    r.offset = if p.timestamp == -1 { leo } else { 0 };
                    r.leader_epoch = 0;
                }
                None => {
                    r.error_code = UNKNOWN_TOPIC_OR_PARTITION;
                    r.offset = -1;
                    r.leader_epoch = -1;
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, len: usize) -> Bytes {
        // Only the fields the null broker reads: length (8..12) and last offset delta (23..27).
        let mut b = vec![0u8; len];
        b[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
        Bytes::from(b)
    }

    #[test]
    fn append_assigns_offsets_and_read_returns_the_containing_batch() {
        let mut log = PartitionLog::default();
        assert_eq!(log.append(&batch(3, 100)), 0);
        assert_eq!(log.append(&batch(2, 100)), 3);
        assert_eq!(log.log_end_offset, 5);
        let r = log.read(4, 1).expect("in range");
        assert_eq!(r.len(), 100, "one whole batch even over max_bytes");
        assert_eq!(i64::from_be_bytes(r[0..8].try_into().expect("8 bytes")), 3);
        assert_eq!(log.read(0, 1000).expect("in range").len(), 200);
        assert_eq!(log.read(5, 1000).expect("at end").len(), 0);
        assert!(log.read(6, 1000).is_none());
    }
}
