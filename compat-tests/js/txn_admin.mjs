// The transaction admin APIs through @platformatic/kafka's own protocol code (kafkajs and
// librdkafka do not implement them): DescribeTransactions v0, ListTransactions v1 and
// DescribeProducers v0 against the transaction transactions.js left behind (TXN_ID on TOPIC).
// Prints one JSON object with the three parsed responses.
// The package targets Node 22; Debian's Node 20 lacks Promise.withResolvers, which it uses.
if (!Promise.withResolvers) {
  Promise.withResolvers = () => {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
const { Connection, describeTransactionsV0, listTransactionsV1, describeProducersV0 } = await import('@platformatic/kafka');

const [host, port] = process.env.BOOTSTRAP.split(':');
const [txnId, topic] = [process.env.TXN_ID, process.env.TOPIC];

const plain = (v) => JSON.parse(JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? Number(x) : x)));

async function main() {
  const conn = new Connection('sluice-compat-platformatic');
  await conn.connect(host, Number(port));
  const described = await describeTransactionsV0.api.async(conn, [txnId]);
  // The client turns an error code into an exception: report its message.
  const missing = await describeTransactionsV0.api.async(conn, ['no-such-txn']).then(
    () => 'no error',
    (e) => (e.errors || [e]).map((x) => x.message).join('; '),
  );
  const listed = await listTransactionsV1.api.async(conn, ['CompleteCommit'], [], -1n);
  const producers = await describeProducersV0.api.async(conn, [{ name: topic, partitionIndexes: [0] }]);
  console.log(JSON.stringify(plain({ described, missing, listed, producers })));
  await conn.close();
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
