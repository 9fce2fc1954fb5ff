// kafkajs's own transactional producer (its protocol code is independent of librdkafka and the
// Java client) for the compat suite: commits one transaction of 5 records to TOPIC, aborts one of
// 3, then a consume-transform-produce step that commits offsets of GROUP inside a transaction;
// finally reads TOPIC with a read_committed consumer (kafkajs's default) and prints
//   VALUE <value>      for every record read
//   DONE               when it reached the end
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, group] = [process.env.BOOTSTRAP, process.env.TOPIC, process.env.GROUP];
const kafka = new Kafka({ clientId: 'sluice-compat-kafkajs-txn', brokers: [bootstrap], logLevel: logLevel.WARN });

async function main() {
  const producer = kafka.producer({ transactionalId: `kafkajs-${topic}`, maxInFlightRequests: 1, idempotent: true });
  await producer.connect();
  let txn = await producer.transaction();
  await txn.send({ topic, messages: [0, 1, 2, 3, 4].map((i) => ({ value: `js-${i}`, partition: 0 })) });
  await txn.commit();
  txn = await producer.transaction();
  await txn.send({ topic, messages: [0, 1, 2].map((i) => ({ value: `js-aborted-${i}`, partition: 0 })) });
  await txn.abort();
  // Offsets committed with a transaction.
  txn = await producer.transaction();
  await txn.send({ topic, messages: [{ value: 'js-ctp', partition: 0 }] });
  await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }] });
  await txn.commit();
  await producer.disconnect();

  const admin = kafka.admin();
  await admin.connect();
  const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  console.log('COMMITTED ' + committed[0].partitions[0].offset);
  await admin.disconnect();

  const consumer = kafka.consumer({ groupId: `${group}-reader`, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  await new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ message }) => {
        console.log('VALUE ' + message.value.toString());
        seen += 1;
        if (seen === 6) resolve();
      },
    }).catch(reject);
    setTimeout(() => reject(new Error(`timed out after ${seen} records`)), 30000);
  });
  await consumer.disconnect();
  console.log('DONE');
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
