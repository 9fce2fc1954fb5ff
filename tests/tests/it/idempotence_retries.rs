//! Idempotent producer under forced retries: a TCP proxy between librdkafka and the broker
//! forwards bytes both ways, but every few Produce requests it lets the request reach the broker
//! and then closes the connection instead of delivering the response — the broker stored the
//! batch, the client never saw the ack. librdkafka reconnects (through the proxy: the broker
//! advertises the proxy's address) and retries the same batches with the same producer id, epoch
//! and sequence numbers; the broker must recognise them as duplicates and report the original
//! offsets. Every record must be stored exactly once, in send order, at offsets 0..n-1.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::Decodable;
use rdkafka::Offset;
use sluice_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const PRODUCE_KEY: i16 = 0;
const PARTITIONS: i32 = 3;
const RECORDS: usize = 3000;
/// Doom one Produce request in this many.
const DROP_EVERY: u64 = 4;
/// Stop dooming after this many drops (bounds the test's time).
const MAX_DROPS: u64 = 40;

#[derive(Default)]
struct ProxyStats {
    /// Produce requests seen (all connections).
    produce_requests: AtomicU64,
    /// Connections closed with a Produce response withheld.
    drops: AtomicU64,
    connections: AtomicU64,
    /// While false the proxy forwards everything.
    dropping: AtomicBool,
    /// Batches of doomed requests whose retry has not been seen yet.
    doomed_batches: Mutex<HashSet<BatchId>>,
    /// Batches of doomed requests seen again in a later request: same partition, producer id,
    /// epoch and base sequence.
    retried_batches: AtomicU64,
}

/// (partition, producer id, producer epoch, base sequence) of one record batch.
type BatchId = (i32, i64, i16, i32);

/// The batches in a Produce request frame (size prefix included).
fn produce_batches(frame: &[u8]) -> Vec<BatchId> {
    let version = i16::from_be_bytes([frame[6], frame[7]]);
    let mut b = bytes::Bytes::copy_from_slice(&frame[4..]);
    RequestHeader::decode(&mut b, ApiKey::Produce.request_header_version(version)).expect("produce request header");
    let req = ProduceRequest::decode(&mut b, version).expect("produce request body");
    let mut out = Vec::new();
    for t in &req.topic_data {
        for p in &t.partition_data {
            let Some(recs) = &p.records else { continue };
            let mut pos = 0;
            while pos + 61 <= recs.len() {
                let at = |i: usize, n: usize| &recs[pos + i..pos + i + n];
                let batch_len = i32::from_be_bytes(at(8, 4).try_into().expect("4")) as usize;
                let pid = i64::from_be_bytes(at(43, 8).try_into().expect("8"));
                let epoch = i16::from_be_bytes(at(51, 2).try_into().expect("2"));
                let seq = i32::from_be_bytes(at(53, 4).try_into().expect("4"));
                out.push((p.index, pid, epoch, seq));
                pos += 12 + batch_len;
            }
        }
    }
    out
}

/// One size-prefixed Kafka frame (prefix included), or None at EOF.
async fn read_frame(r: &mut OwnedReadHalf) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = i32::from_be_bytes(len);
    assert!((0..=256 << 20).contains(&n), "proxy: frame size {n} out of range");
    let mut frame = vec![0u8; 4 + n as usize];
    frame[..4].copy_from_slice(&len);
    r.read_exact(&mut frame[4..]).await?;
    Ok(Some(frame))
}

/// Client → broker: forwards request frames; a doomed Produce request is forwarded, its
/// correlation id published in `doomed`, and then this direction stalls (holding both halves
/// open, so the broker still answers) until the other direction closes the connection.
async fn client_to_broker(
    mut from_client: OwnedReadHalf,
    mut to_broker: OwnedWriteHalf,
    doomed: Arc<AtomicI64>,
    stats: Arc<ProxyStats>,
) {
    loop {
        let frame = match read_frame(&mut from_client).await {
            Ok(Some(f)) => f,
            _ => {
                let _ = to_broker.shutdown().await;
                return;
            }
        };
        let mut doom = false;
        if frame.len() >= 12 && i16::from_be_bytes([frame[4], frame[5]]) == PRODUCE_KEY {
            let n = stats.produce_requests.fetch_add(1, Ordering::SeqCst) + 1;
            let batches = produce_batches(&frame);
            {
                let mut doomed = stats.doomed_batches.lock().expect("lock");
                for b in &batches {
                    if doomed.remove(b) {
                        stats.retried_batches.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            if stats.dropping.load(Ordering::SeqCst)
                && n.is_multiple_of(DROP_EVERY)
                && stats.drops.load(Ordering::SeqCst) < MAX_DROPS
            {
                doom = true;
                stats.doomed_batches.lock().expect("lock").extend(batches);
                let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                doomed.store(i64::from(correlation), Ordering::SeqCst);
            }
        }
        if to_broker.write_all(&frame).await.is_err() {
            return;
        }
        if doom {
            let _keep = (from_client, to_broker);
            loop {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// One proxied connection: broker → client forwards response frames until the response to the
/// doomed request arrives, which is swallowed and the connection closed both ways.
async fn proxy_connection(client: TcpStream, broker: std::net::SocketAddr, stats: Arc<ProxyStats>) {
    let Ok(upstream) = TcpStream::connect(broker).await else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (from_client, mut to_client) = client.into_split();
    let (mut from_broker, to_broker) = upstream.into_split();
    let doomed = Arc::new(AtomicI64::new(i64::MIN));
    let c2b = tokio::spawn(client_to_broker(from_client, to_broker, doomed.clone(), stats.clone()));
    loop {
        let frame = match read_frame(&mut from_broker).await {
            Ok(Some(f)) => f,
            _ => break,
        };
        let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if i64::from(correlation) == doomed.load(Ordering::SeqCst) {
            stats.drops.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if to_client.write_all(&frame).await.is_err() {
            break;
        }
    }
    c2b.abort();
    let _ = c2b.await;
    // Dropping every half closes both sockets.
}

async fn run_proxy(listener: TcpListener, broker: std::net::SocketAddr, stats: Arc<ProxyStats>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { return };
        stats.connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(proxy_connection(client, broker, stats.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_retries_after_lost_acks_store_each_record_once_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let proxy_port = listener.local_addr().expect("proxy addr").port();
    let advertised = format!("PLAINTEXT://127.0.0.1:{proxy_port}");
    let broker = TestBroker::start(&[("advertised.listeners", advertised.as_str())]);
    let stats = Arc::new(ProxyStats::default());
    let proxy = tokio::spawn(run_proxy(listener, broker.addr(), stats.clone()));
    let bootstrap = format!("127.0.0.1:{proxy_port}");

    let topic = topic_name("idem-retry");
    create_topic(&bootstrap, &topic, PARTITIONS, &[]).await;

    let p = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "2"),
            ("batch.num.messages", "25"),
            ("message.timeout.ms", "120000"),
            ("retry.backoff.ms", "20"),
            ("reconnect.backoff.ms", "20"),
            ("reconnect.backoff.max.ms", "200"),
        ],
    );
    let sent: Vec<TestRecord> =
        (0..RECORDS).map(|i| TestRecord::value(format!("retry-{i:05}")).to_partition(i as i32 % PARTITIONS)).collect();

    check!(
        "{RECORDS} records through a proxy that withholds a Produce response (and closes) every {DROP_EVERY}th request"
    );
    stats.dropping.store(true, Ordering::SeqCst);
    let mut acked = Vec::with_capacity(RECORDS);
    // A few chunks, so requests keep flowing after every reconnect.
    for chunk in sent.chunks(250) {
        acked.extend(produce_ok(&p, &topic, chunk).await);
    }
    stats.dropping.store(false, Ordering::SeqCst);
    let drops = stats.drops.load(Ordering::SeqCst);
    check!(
        "proxy saw {} Produce requests on {} connections and dropped {drops} connections with the ack withheld",
        stats.produce_requests.load(Ordering::SeqCst),
        stats.connections.load(Ordering::SeqCst)
    );
    assert!(drops >= 5, "the proxy dropped only {drops} connections; retries did not really happen");
    let retried = stats.retried_batches.load(Ordering::SeqCst);
    check!("{retried} batches of dropped requests were sent again with the same producer id, epoch and sequence");
    assert!(retried >= 5, "only {retried} batches of dropped requests were retried as-is");

    check!(
        "acknowledged offsets per partition are exactly 0..n-1 in send order (duplicates report the original offset)"
    );
    for part in 0..PARTITIONS {
        let offsets: Vec<i64> = acked.iter().filter(|(q, _)| *q == part).map(|(_, o)| *o).collect();
        let n = sent.iter().filter(|r| r.partition == Some(part)).count() as i64;
        assert_eq!(offsets, (0..n).collect::<Vec<_>>(), "partition {part}: acknowledged offsets");
    }

    check!("each partition stores each record exactly once, in send order, at offsets 0..n-1");
    let got =
        consume_exactly(&broker.bootstrap(), &topic, &(0..PARTITIONS).collect::<Vec<_>>(), Offset::Beginning, RECORDS);
    for part in 0..PARTITIONS {
        let want: Vec<(i64, String)> = sent
            .iter()
            .filter(|r| r.partition == Some(part))
            .enumerate()
            .map(|(i, r)| (i as i64, String::from_utf8(r.value.clone().unwrap_or_default()).expect("utf8")))
            .collect();
        let have: Vec<(i64, String)> =
            got.iter().filter(|c| c.partition == part).map(|c| (c.offset, c.value_str())).collect();
        assert_eq!(have, want, "partition {part}");
        assert_eq!(
            watermarks(&broker.bootstrap(), &topic, part).1,
            want.len() as i64,
            "partition {part}: high watermark (no duplicate stored)"
        );
    }
    proxy.abort();
}
